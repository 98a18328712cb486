import Synchronization

/// An operation that did not finish by its deadline.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let operation: String
    public let after: Duration
    public var description: String { "\(operation) did not finish within \(after)" }
}

/// Runs `body`, but returns (throwing ``DeadlineExceeded``) once `deadline` has passed, even
/// if `body` is stuck in a call that ignores cancellation (a blocking store call on a thread
/// pool): `body` is cancelled and left to finish on its own. For shutdown paths, which must
/// end in bounded time whatever the store does.
public func withDeadline<T: Sendable>(
    _ deadline: Duration, operation: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withDeadline(deadline, clock: ContinuousClock(), operation: operation, body)
}

/// ``withDeadline(_:operation:_:)`` on a given clock (tests pass a manual one).
public func withDeadline<T: Sendable, C: Clock>(
    _ deadline: Duration, clock: C, operation: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T where C.Duration == Duration {
    let slot = ContinuationSlot<T>()
    return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        slot.set(c)
        let work = Task {
            // Await first, then take the continuation: `slot.take()?.resume(returning: try await
            // body())` would take it before the await and leave the deadline nothing to resume.
            do {
                let value = try await body()
                slot.take()?.resume(returning: value)
            } catch {
                slot.take()?.resume(throwing: error)
            }
        }
        Task {
            try? await clock.sleep(for: deadline)
            if let c = slot.take() {
                work.cancel()
                c.resume(throwing: DeadlineExceeded(operation: operation, after: deadline))
            }
        }
    }
}

/// A continuation resumed exactly once, by whichever side takes it first.
private final class ContinuationSlot<T: Sendable>: Sendable {
    private let slot = Mutex<CheckedContinuation<T, any Error>?>(nil)
    func set(_ c: CheckedContinuation<T, any Error>) { slot.withLock { $0 = c } }
    func take() -> CheckedContinuation<T, any Error>? {
        slot.withLock { s in
            defer { s = nil }; return s
        }
    }
}
