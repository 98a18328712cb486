import STBProtocol
import Testing

@testable import Telemetry

@Suite("Audience aggregator")
struct AudienceAggregatorTests {
    let m0: Int64 = 1_795_315_200_000  // a whole minute
    func t(_ minute: Int64, _ second: Int64 = 0) -> Int64 { m0 + minute * 60_000 + second * 1000 }
    func tune(_ ch: String) -> ViewingEvent { ViewingEvent(kind: .tune, channel: ch) }

    @Test func watchingIsAttributedToEachMinuteItSpans() {
        var a = AudienceAggregator()
        a.apply("box1", tune("one"), at: t(0, 30))
        a.heard("box1", at: t(2, 30))
        let out = a.close(before: t(3))
        #expect(
            out == [
                AudienceCount(channel: "one", minute: t(0), viewers: 1, seconds: 30, errorBoxes: 0),
                AudienceCount(channel: "one", minute: t(1), viewers: 1, seconds: 60, errorBoxes: 0),
                AudienceCount(channel: "one", minute: t(2), viewers: 1, seconds: 60, errorBoxes: 0),
            ])
    }

    @Test func surfingSplitsAMinuteAndLeaveStopsCounting() {
        var a = AudienceAggregator()
        a.apply("b", tune("one"), at: t(0, 0))
        a.apply("b", tune("two"), at: t(0, 20))
        a.apply("b", tune("one"), at: t(0, 25))
        a.apply("b", ViewingEvent(kind: .leave), at: t(0, 40))
        a.apply("c", tune("two"), at: t(0, 10))
        a.apply("c", ViewingEvent(kind: .standbyOn), at: t(0, 50))
        let out = a.close(before: t(1))
        #expect(
            out == [
                AudienceCount(channel: "one", minute: t(0), viewers: 1, seconds: 35, errorBoxes: 0),
                AudienceCount(channel: "two", minute: t(0), viewers: 2, seconds: 45, errorBoxes: 0),
            ])
        #expect(a.close(before: t(5)).isEmpty, "nobody is watching after leave and standby")
    }

    @Test func closedMinutesAreHandedOutOnce() {
        var a = AudienceAggregator()
        a.apply("b", tune("one"), at: t(0))
        a.heard("b", at: t(1, 30))
        #expect(a.close(before: t(1)).map(\.seconds) == [60])
        #expect(a.close(before: t(1)).isEmpty)
        a.heard("b", at: t(2))
        #expect(a.close(before: t(2)).map(\.minute) == [t(1)])
    }

    @Test func aSilentBoxStopsCountingAfterStaleness() {
        var a = AudienceAggregator(staleAfterMillis: 90_000)
        a.apply("b", tune("one"), at: t(0))
        let out = a.close(before: t(10))
        #expect(out.map(\.seconds) == [60, 30])
    }

    @Test func playErrorsCountDistinctBoxesPerChannelMinute() {
        var a = AudienceAggregator()
        for box in ["a", "b", "c"] { a.apply(box, tune("news"), at: t(0)) }
        a.apply("a", ViewingEvent(kind: .playError, channel: "news", code: "E1"), at: t(0, 10))
        a.apply("a", ViewingEvent(kind: .playError, channel: "news", code: "E1"), at: t(0, 20))
        a.apply("b", ViewingEvent(kind: .playError, code: "E2"), at: t(0, 30))
        for box in ["a", "b", "c"] { a.heard(box, at: t(1)) }
        let out = a.close(before: t(1))
        #expect(out == [AudienceCount(channel: "news", minute: t(0), viewers: 3, seconds: 180, errorBoxes: 2)])
    }
}
