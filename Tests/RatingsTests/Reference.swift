import Ratings

/// The brute-force reference of the ratings method: simulates a box tick by tick (a tick is a second, or a
/// millisecond for the dwell edges; every event time is a whole number of ticks). At each tick it asks what
/// the box shows, whether that tune lasts the dwell (looking ahead), and whether an interaction happened
/// within the cap; then it credits each minute by counting ticks. Written from docs/ratings-method.md
/// without the Sessionizer's interval arithmetic.
enum Reference {
    struct Result: Equatable {
        var credits: [MinuteCredit]
        var skewed: Int
        var late: Int
    }

    static func run(
        _ connections: [ConnectionLog], horizon: Int64, tick: Int64, parameters p: RatingsParameters
    ) -> Result {
        // Clocks: hub time = box ts + (hello received − hello ts); judge against the receive time.
        var placed: [(time: Int64, order: Int, kind: RatedKind)] = []
        var skewed = 0
        var late = 0
        for c in connections {
            for e in c.events {
                let t = e.boxTime + (c.helloReceivedAt - c.helloBoxTime)
                if t > e.receivedAt + p.futureSkewToleranceMs {
                    skewed += 1
                } else if t < e.receivedAt - p.lateHorizonMs {
                    late += 1
                } else {
                    placed.append((t, placed.count, e.kind))
                }
            }
        }
        placed.sort { $0.time != $1.time ? $0.time < $1.time : $0.order < $1.order }
        let events = placed.filter { $0.time < horizon }
        guard let firstTime = events.first?.time else { return Result(credits: [], skewed: skewed, late: late) }

        struct Showing: Equatable {
            var channel: String
            var mode: ViewingMode
        }
        func shows(_ kind: RatedKind) -> Showing? {
            if case .tune(let c, let m) = kind { Showing(channel: c, mode: m) } else { nil }
        }
        func isInteraction(_ kind: RatedKind) -> Bool {
            switch kind {
            case .tune, .leave, .standbyOn, .standbyOff, .playStart, .playStop: true
            default: false
            }
        }
        // Per minute: ticks per (channel, mode) and the first tick of each. Ticks come in order, so one
        // minute is open at a time.
        var minutes: [(minute: Int64, tallies: [(key: Showing, ticks: Int64, first: Int64)])] = []
        var showing: Showing?
        var tuneStart: Int64 = 0
        var tuneEnd: Int64 = 0
        var lastInteraction: Int64?
        var i = 0
        var x = firstTime
        while x < horizon {
            while i < events.count && events[i].time <= x {
                let e = events[i]
                if isInteraction(e.kind) { lastInteraction = e.time }
                switch e.kind {
                case .tune:
                    if shows(e.kind) != showing {
                        showing = shows(e.kind)
                        tuneStart = e.time
                        // Look ahead: the tune lasts until something else is shown, leave or standby.
                        tuneEnd = horizon
                        for later in events[(i + 1)...] {
                            if case .leave = later.kind { tuneEnd = later.time; break }
                            if case .standbyOn = later.kind { tuneEnd = later.time; break }
                            if let s = shows(later.kind), s != showing { tuneEnd = later.time; break }
                        }
                    }
                case .leave, .standbyOn: showing = nil
                default: break
                }
                i += 1
            }
            if let s = showing, tuneEnd - tuneStart >= p.dwellMs, let li = lastInteraction, x < li + p.capMs {
                let minute = x >= 0 ? x / 60_000 : -((-x - 1) / 60_000) - 1
                if minutes.last?.minute != minute { minutes.append((minute, [])) }
                let m = minutes.count - 1
                if let k = minutes[m].tallies.firstIndex(where: { $0.key == s }) {
                    minutes[m].tallies[k].ticks += 1
                } else {
                    minutes[m].tallies.append((s, 1, x))
                }
            }
            x += tick
        }
        var credits: [MinuteCredit] = []
        for (minute, list) in minutes {
            guard let best = list.max(by: { $0.ticks != $1.ticks ? $0.ticks < $1.ticks : $0.first > $1.first }) else {
                continue
            }
            if best.ticks * tick >= p.minuteMinimumMs {
                credits.append(MinuteCredit(minute: minute, channel: best.key.channel, mode: best.key.mode))
            }
        }
        return Result(credits: credits, skewed: skewed, late: late)
    }
}
