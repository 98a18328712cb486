import Synchronization

/// Opens once, when the store is reachable and set up; services that need the store wait on it.
public final class ReadinessGate: Sendable {
    private struct State {
        var open = false
        var closed = false
        var waiters: [CheckedContinuation<Bool, Never>] = []
    }
    private let state = Mutex(State())

    public init() {}

    public var isOpen: Bool { state.withLock { $0.open } }

    /// Lets every waiter through.
    public func open() { settle(true) }

    /// Gives up: waiters get false (shutdown before the store was ready).
    public func abandon() { settle(false) }

    private func settle(_ value: Bool) {
        let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            guard !s.open && !s.closed else { return [] }
            if value { s.open = true } else { s.closed = true }
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: value) }
    }

    /// True once open; false if abandoned.
    public func wait() async -> Bool {
        await withCheckedContinuation { c in
            let now = state.withLock { s -> Bool? in
                if s.open { return true }
                if s.closed { return false }
                s.waiters.append(c)
                return nil
            }
            if let now { c.resume(returning: now) }
        }
    }
}
