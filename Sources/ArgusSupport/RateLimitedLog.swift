import Synchronization

/// Folds a burst of events into at most one log line per `interval`: a flood (bad tokens,
/// refused sockets, dropped writes) must not flood the log. Each line says how many events
/// were folded into it since the last one.
public final class RateLimitedLog: Sendable {
    private struct State {
        var last: ContinuousClock.Instant?
        var folded = 0
    }
    private let state = Mutex(State())
    public let interval: Duration

    public init(every interval: Duration = .seconds(10)) { self.interval = interval }

    /// Calls `emit` with the number of events folded since the last line, or not at all.
    public func event(_ emit: (Int) -> Void) {
        let now = ContinuousClock.now
        let folded: Int? = state.withLock { s in
            if let last = s.last, now - last < interval {
                s.folded += 1
                return nil
            }
            let f = s.folded
            s = State(last: now, folded: 0)
            return f
        }
        if let folded { emit(folded) }
    }
}
