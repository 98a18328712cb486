/// A credited stretch of viewing: one channel in one mode, `[start, end)` on the hub's clock (ms).
public struct TuningSession: Sendable, Hashable {
    public var channel: String
    public var mode: ViewingMode
    public var start: Int64
    public var end: Int64

    public init(channel: String, mode: ViewingMode, start: Int64, end: Int64) {
        self.channel = channel
        self.mode = mode
        self.start = start
        self.end = end
    }

    public var durationMs: Int64 { end - start }
}

/// Turns a box's placed events into credited tuning sessions (docs/ratings-method.md, "Sessions").
///
/// - A `tune` starts a tune of its channel and mode, unless that channel and mode are already shown (then it
///   is only an interaction). The tune ends at the next tune to something else, `leave` or `standby_on`;
///   a tune still open ends at `horizon`. Other events neither start nor end tunes.
/// - Dwell: a tune shorter than `dwellMs` earns nothing; one at least that long counts from its start.
///   An open tune is judged on `horizon − start`, so it may qualify at a later horizon.
/// - Capping: time `t` is credited only if some interaction happened in `(t − capMs, t]`, i.e. credit stops
///   at the last interaction + `capMs` and resumes at the next interaction. A tune may thus give several
///   sessions.
/// - Events at or after `horizon` are ignored.
public enum Sessionizer {
    /// The credited sessions of one box, in time order. `events` must be sorted by time (as
    /// `ClockCorrection.place` gives them); events at the same time apply in the order given.
    public static func sessions(
        _ events: [PlacedEvent], horizon: Int64, parameters: RatingsParameters = .default
    ) -> [TuningSession] {
        var tunes: [TuningSession] = []
        var windows: [(start: Int64, end: Int64)] = []  // interaction + cap, merged
        var open: TuningSession?
        for event in events where event.time < horizon {
            if event.kind.isInteraction {
                let end = min(event.time &+ parameters.capMs, horizon)
                if let last = windows.last, event.time <= last.end {
                    windows[windows.count - 1].end = max(last.end, end)
                } else {
                    windows.append((event.time, end))
                }
            }
            guard event.kind.endsTune else { continue }
            if case .tune(let channel, let mode) = event.kind, let o = open, o.channel == channel, o.mode == mode {
                continue
            }
            if var o = open {
                o.end = event.time
                tunes.append(o)
                open = nil
            }
            if case .tune(let channel, let mode) = event.kind {
                open = TuningSession(channel: channel, mode: mode, start: event.time, end: horizon)
            }
        }
        if let o = open { tunes.append(o) }

        var sessions: [TuningSession] = []
        var w = 0
        for tune in tunes where tune.durationMs >= parameters.dwellMs && tune.durationMs > 0 {
            while w < windows.count && windows[w].end <= tune.start { w += 1 }
            var i = w
            while i < windows.count && windows[i].start < tune.end {
                let start = max(tune.start, windows[i].start)
                let end = min(tune.end, windows[i].end)
                if start < end {
                    sessions.append(TuningSession(channel: tune.channel, mode: tune.mode, start: start, end: end))
                }
                i += 1
            }
        }
        return sessions
    }
}
