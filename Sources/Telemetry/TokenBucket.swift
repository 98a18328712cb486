/// A token bucket: `rate` tokens a second, holding at most `capacity`. A value type; the
/// caller passes the time, so tests need no clock.
public struct TokenBucket: Sendable, Equatable {
    public let rate: Double
    public let capacity: Double
    private var tokens: Double
    private var last: UInt64

    /// - Parameter now: nanoseconds on any monotonic clock.
    public init(rate: Double, capacity: Double, now: UInt64) {
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now
    }

    /// Takes `n` tokens if there are enough; otherwise takes none and returns false.
    public mutating func take(_ n: Int, now: UInt64) -> Bool {
        if now > last {
            tokens = min(capacity, tokens + Double(now - last) / 1e9 * rate)
            last = now
        }
        guard tokens >= Double(n) else { return false }
        tokens -= Double(n)
        return true
    }
}
