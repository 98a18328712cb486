/// One box's credited minute: the clock minute (`ms / 60_000`, floored) went to this channel in this mode.
public struct MinuteCredit: Sendable, Hashable {
    public var minute: Int64
    public var channel: String
    public var mode: ViewingMode

    public init(minute: Int64, channel: String, mode: ViewingMode) {
        self.minute = minute
        self.channel = channel
        self.mode = mode
    }
}

/// Minute credit, BARB's rule (docs/ratings-method.md, "Minute credit").
///
/// In each clock minute, the (channel, mode) watched longest in that minute gets the minute, provided it was
/// watched at least `minuteMinimumMs` in it. Ties go to the one whose viewing in that minute began first (a
/// box shows one thing at a time, so this always decides).
public enum MinuteCrediting {
    /// The credited minutes of one box, in minute order, from its sessions (non-overlapping, as
    /// `Sessionizer.sessions` gives them, in any order).
    public static func credits(_ sessions: [TuningSession], parameters: RatingsParameters = .default) -> [MinuteCredit] {
        struct Tally {
            var ms: Int64
            var first: Int64
        }
        struct Key: Hashable {
            var channel: String
            var mode: ViewingMode
        }
        var byMinute: [Int64: [Key: Tally]] = [:]
        for s in sessions where s.start < s.end {
            let key = Key(channel: s.channel, mode: s.mode)
            var t = s.start
            while t < s.end {
                let minute = minuteIndex(t)
                let next = min(s.end, (minute + 1) * RatingsParameters.minuteMs)
                var tally = byMinute[minute]?[key] ?? Tally(ms: 0, first: t)
                tally.ms += next - t
                tally.first = min(tally.first, t)
                byMinute[minute, default: [:]][key] = tally
                t = next
            }
        }
        var credits: [MinuteCredit] = []
        for minute in byMinute.keys.sorted() {
            guard let tallies = byMinute[minute] else { continue }
            let best = tallies.max { a, b in
                a.value.ms != b.value.ms ? a.value.ms < b.value.ms : a.value.first > b.value.first
            }
            if let best, best.value.ms >= parameters.minuteMinimumMs {
                credits.append(MinuteCredit(minute: minute, channel: best.key.channel, mode: best.key.mode))
            }
        }
        return credits
    }

    /// Placement, sessions and minute credit in one go: a box's credited minutes up to `horizon`, with the
    /// counts of events left out as skewed or late.
    public static func credits(
        connections: [ConnectionLog], horizon: Int64, parameters: RatingsParameters = .default
    ) -> (credits: [MinuteCredit], skewed: Int, late: Int) {
        let placement = ClockCorrection.place(connections, parameters: parameters)
        let sessions = Sessionizer.sessions(placement.events, horizon: horizon, parameters: parameters)
        return (credits(sessions, parameters: parameters), placement.skewed, placement.late)
    }
}
