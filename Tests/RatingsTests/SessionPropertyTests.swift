import ArgusTestSupport
import Ratings
import Testing

/// Sessions and minute credit against the brute-force reference, on random box histories.
@Suite struct SessionPropertyTests {
    static let cases: [UInt64] = (0..<400).map { 0x5EED_0000 + UInt64($0) }

    @Test func sessionsAndCreditMatchTheReference() {
        for seed in Self.cases {
            let s = Scenario(seed: seed)
            let got = MinuteCrediting.credits(connections: s.connections, horizon: s.horizon, parameters: s.parameters)
            let want = Reference.run(s.connections, horizon: s.horizon, tick: s.tick, parameters: s.parameters)
            #expect(got.credits == want.credits, "\(s)")
            #expect(got.skewed == want.skewed && got.late == want.late, "\(s)")
            if got.credits != want.credits { return }
        }
    }

    /// Sessions are well formed: ordered, non-overlapping, each at least as long as nothing, within the
    /// horizon, and every credited tune lasted the dwell.
    @Test func sessionsAreOrderedAndDisjoint() {
        for seed in Self.cases {
            let s = Scenario(seed: seed)
            let placed = ClockCorrection.place(s.connections, parameters: s.parameters).events
            let sessions = Sessionizer.sessions(placed, horizon: s.horizon, parameters: s.parameters)
            for (a, b) in zip(sessions, sessions.dropFirst()) { #expect(a.end <= b.start, "\(s)") }
            #expect(sessions.allSatisfy { $0.start < $0.end && $0.end <= s.horizon }, "\(s)")
        }
    }

    /// Late data: outside the planned window, credit with and without the arrived connection is the same.
    @Test func lateDataWindowHoldsEveryChange() {
        for seed in Self.cases {
            let s = Scenario(seed: seed)
            guard s.connections.count > 1 else { continue }
            var rng = SplitMix64(seed: seed ^ 0xA11)
            let k = Int(rng.next() % UInt64(s.connections.count))
            var stored = s.connections
            let arrived = stored.remove(at: k)
            let existing = ClockCorrection.place(stored, parameters: s.parameters).events
            let plan = LateData.plan(existing: existing, arrived: [arrived], parameters: s.parameters)
            let before = MinuteCrediting.credits(connections: stored, horizon: s.horizon, parameters: s.parameters)
            // The hub orders the arrived connection where it belongs among the stored ones.
            let after = MinuteCrediting.credits(
                connections: s.connections, horizon: s.horizon, parameters: s.parameters)
            guard let window = plan.window else {
                #expect(before.credits == after.credits, "\(s)")
                continue
            }
            let outsideBefore = before.credits.filter { !window.contains(minute: $0.minute) }
            let outsideAfter = after.credits.filter { !window.contains(minute: $0.minute) }
            #expect(outsideBefore == outsideAfter, "\(s) window \(window)")
            #expect(plan.late + plan.skewed + plan.credited.count == arrived.events.count, "\(s)")
        }
    }

    /// Fine-tick histories (1 ms) are among the cases, so the dwell edges 9.999 s / 10 s are exercised.
    @Test func casesCoverTheEdges() {
        let scenarios = Self.cases.map { Scenario(seed: $0) }
        #expect(scenarios.filter { $0.tick == 1 }.count >= 25)
        let late = scenarios.reduce(0) {
            $0
                + MinuteCrediting.credits(connections: $1.connections, horizon: $1.horizon, parameters: $1.parameters)
                .late
        }
        #expect(late > 50)
    }
}
