import ArgusSupport
import Testing

@Suite struct HubClockTests {
    @Test func realTimeIsTheSystemClock() {
        let before = HubClock.realMillis()
        let now = HubClock.real.nowMillis()
        #expect(!HubClock.real.isSimulated)
        #expect(now >= before && now - before < 1_000)
    }

    @Test func simulatedTimeStartsWhereAskedAndRunsFaster() {
        let real = HubClock.realMillis()
        // Started 2 real seconds ago at 1,000,000 ms, 1440 times faster: 2,880 simulated seconds on.
        let clock = HubClock(speed: 1440, startMillis: 1_000_000, realOrigin: real - 2_000)
        let now = clock.nowMillis()
        #expect(clock.isSimulated)
        #expect(now >= 1_000_000 + 2_000 * 1440 && now < 1_000_000 + 3_000 * 1440)
    }
}
