/// A one-slot wake-up signal from synchronous producers to one async consumer, built on
/// `AsyncStream.makeStream`: signals that arrive while the consumer is busy fold into one.
///
///     for await _ in wakeup.signals { flush() }   // ends when the consuming task is cancelled
public struct Wakeup: Sendable {
    public let signals: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (signals, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Wakes the consumer; never blocks.
    public func signal() { continuation.yield() }

    /// Ends the consumer's loop once it has taken a signal still pending.
    public func finish() { continuation.finish() }
}
