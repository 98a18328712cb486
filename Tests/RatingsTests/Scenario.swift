import ArgusTestSupport
import Ratings

/// A random box history for the property tests: events on a grid of `tick` ms, true hub times turned into
/// box times through per-connection clock errors of up to ±10 h, with some events delivered late and some
/// with a box clock that jumped. Replayable from `seed`.
struct Scenario: CustomStringConvertible {
    var seed: UInt64
    var tick: Int64
    var parameters: RatingsParameters
    var connections: [ConnectionLog]
    var horizon: Int64

    var description: String { "seed \(seed) tick \(tick) \(parameters)" }

    static let start: Int64 = 1_795_315_560_000  // a whole minute

    init(seed: UInt64) {
        self.seed = seed
        var rng = SplitMix64(seed: seed)
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        func upTo(_ n: Int64) -> Int64 { Int64(rng.next() % UInt64(n + 1)) }
        let fine = pick(10) == 0  // millisecond ticks: short histories around the dwell edge
        tick = fine ? 1 : 1000
        var p = RatingsParameters()
        if pick(3) == 0 { p.dwellMs = (5 + upTo(15)) * 1000 }
        if !fine && pick(2) == 0 { p.capMs = max(p.dwellMs, (1 + upTo(15)) * 60_000) }
        if pick(4) == 0 { p.minuteMinimumMs = 1 + upTo(59_999) }
        if pick(4) == 0 { p.capMs = p.dwellMs + upTo(30) * 1000 }
        parameters = p

        let channels = ["a", "b", "c"]
        let count = fine ? 3 + pick(6) : 5 + pick(40)
        var t = Self.start + upTo(120) * 1000
        var timeline: [PlacedEvent] = []
        for _ in 0..<count {
            let gap: Int64
            switch pick(fine ? 4 : 7) {
            case 0: gap = p.dwellMs - tick
            case 1: gap = p.dwellMs
            case 2: gap = p.dwellMs + tick
            case 3: gap = fine ? upTo(15_000) : upTo(20) * 1000
            case 4: gap = upTo(180) * 1000
            case 5: gap = upTo(10) * 60_000
            default:  // capping edges, mostly for short caps (a 4 h gap is 14,400 ticks)
                gap =
                    p.capMs > 3_600_000 && pick(4) != 0
                    ? upTo(300) * 1000 : [0, p.capMs - tick, p.capMs, p.capMs + tick][pick(4)]
            }
            t += gap
            let kind: RatedKind
            switch pick(16) {
            case 0..<7:
                let mode: ViewingMode = pick(5) == 0 ? (pick(2) == 0 ? .timeshift : .catchup) : .live
                kind = .tune(channel: channels[pick(channels.count)], mode: mode)
            case 7: kind = .leave
            case 8: kind = .standbyOn
            case 9: kind = .standbyOff
            case 10: kind = .playStart
            case 11: kind = .playStop
            case 12: kind = .playError
            case 13: kind = .appCrash
            default: kind = .portalReload
            }
            timeline.append(PlacedEvent(time: t, kind: kind))
        }
        // Split into connections, each with its own box clock error and hello latency.
        var connections: [ConnectionLog] = []
        var rest = timeline[...]
        while !rest.isEmpty {
            let n = 1 + pick(rest.count)
            let part = rest.prefix(n)
            rest = rest.dropFirst(n)
            let error = (upTo(20 * 3600) - 10 * 3600) * 1000  // box clock − hub clock
            let helloAt = part.first.map { $0.time - upTo(60) * 1000 } ?? Self.start
            let latency = upTo(3) * tick
            var events: [RatedEvent] = []
            for e in part {
                var boxTime = e.time + error - latency  // placement adds the latency back: hub time is exact
                var receivedAt = e.time + upTo(2) * 1000
                switch pick(25) {
                case 0: receivedAt = e.time + p.lateHorizonMs + upTo(3600) * 1000 + tick  // resent too late
                case 1: receivedAt = e.time + p.lateHorizonMs  // just in time
                case 2: boxTime += 3_600_000  // the box clock jumped: skewed
                case 3: receivedAt = e.time - p.futureSkewToleranceMs  // exactly at the skew tolerance
                default: break
                }
                events.append(RatedEvent(boxTime: boxTime, receivedAt: receivedAt, kind: e.kind))
            }
            connections.append(
                ConnectionLog(helloBoxTime: helloAt + error - latency, helloReceivedAt: helloAt, events: events))
        }
        self.connections = connections
        let last = timeline.last?.time ?? Self.start
        horizon = pick(5) == 0 ? last - upTo(60) * tick : last + (fine ? upTo(5_000) : upTo(600) * 1000)
    }
}
