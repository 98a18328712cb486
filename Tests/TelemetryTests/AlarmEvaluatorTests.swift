import STBProtocol
import Testing

@testable import Telemetry

@Suite("Alarm evaluator")
struct AlarmEvaluatorTests {
    @Test func thresholdRaisesOnlyAfterItsDurationAndClearsWhenBack() {
        var a = AlarmEvaluator(rules: [ThresholdRule.parse("tempC>80/300")!])
        #expect(a.metrics("b", MetricsSample(tempC: 85), at: 0).isEmpty)
        #expect(a.metrics("b", MetricsSample(tempC: 90), at: 299_000).isEmpty)
        let raised = a.metrics("b", MetricsSample(tempC: 86), at: 300_000)
        #expect(raised.count == 1)
        guard case .raise(let key, let rule, let target, _) = raised.first else { Issue.record(); return }
        #expect(key == "tempC>80for300s|b" && rule == "tempC>80for300s" && target == "b")
        #expect(a.metrics("b", MetricsSample(tempC: 95), at: 400_000).isEmpty, "raised once")
        #expect(a.metrics("b", MetricsSample(cpu: 1), at: 410_000).isEmpty, "a sample without the figure changes nothing")
        #expect(a.metrics("b", MetricsSample(tempC: 70), at: 420_000) == [.clear(key: "tempC>80for300s|b")])
    }

    @Test func aDipResetsTheDuration() {
        var a = AlarmEvaluator(rules: [ThresholdRule(metric: "cpu", comparison: .above, value: 90, forSeconds: 60)])
        _ = a.metrics("b", MetricsSample(cpu: 95), at: 0)
        _ = a.metrics("b", MetricsSample(cpu: 50), at: 30_000)
        #expect(a.metrics("b", MetricsSample(cpu: 95), at: 61_000).isEmpty)
        #expect(a.metrics("b", MetricsSample(cpu: 95), at: 121_000).count == 1)
    }

    @Test func ruleParsing() {
        #expect(ThresholdRule.parse("rttMs>500/60") == ThresholdRule(metric: "rttMs", comparison: .above, value: 500, forSeconds: 60))
        #expect(ThresholdRule.parse("bitrateKbps<1000/120")?.comparison == .below)
        #expect(ThresholdRule.parse("nope>1/1") == nil)
        #expect(ThresholdRule.parse("cpu>x/1") == nil)
        #expect(ThresholdRule.parse("cpu=1/1") == nil)
    }

    @Test func channelOutageFromCorrelatedErrorsAcrossTheFleet() {
        var a = AlarmEvaluator(outageShare: 0.3, outageMinViewers: 5, outageWindowSeconds: 60)
        for i in 0..<10 { _ = a.event("b\(i)", ViewingEvent(kind: .tune, channel: "news"), at: 1000) }
        #expect(a.event("b0", ViewingEvent(kind: .playError, channel: "news", code: "E"), at: 2000).isEmpty)
        #expect(a.event("b1", ViewingEvent(kind: .playError, code: "E"), at: 3000).isEmpty, "channel taken from the tune")
        let raised = a.event("b2", ViewingEvent(kind: .playError, channel: "news", code: "E"), at: 4000)
        guard case .raise(let key, "channel_outage", "news", let details)? = raised.first else { Issue.record("\(raised)"); return }
        #expect(key == "channel_outage|news" && details["errorBoxes"] == "3" && details["viewers"] == "10")
        #expect(a.activeKeys == ["channel_outage|news"])
        // Errors age out of the window; the next event on the channel clears it.
        #expect(a.event("b5", ViewingEvent(kind: .playStart, channel: "news"), at: 70_000) == [.clear(key: "channel_outage|news")])
    }

    @Test func errorsOnAChannelWithFewViewersDoNotRaise() {
        var a = AlarmEvaluator(outageShare: 0.2, outageMinViewers: 5)
        for i in 0..<3 { _ = a.event("b\(i)", ViewingEvent(kind: .tune, channel: "tiny"), at: 0) }
        for i in 0..<3 { #expect(a.event("b\(i)", ViewingEvent(kind: .playError, channel: "tiny", code: "E"), at: 1000).isEmpty) }
    }
}
