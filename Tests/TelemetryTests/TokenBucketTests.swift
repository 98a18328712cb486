import Testing

@testable import Telemetry

@Suite("Token bucket")
struct TokenBucketTests {
    @Test func burstThenRefillAtTheRate() {
        var b = TokenBucket(rate: 10, capacity: 20, now: 0)
        do { let ok = b.take(20, now: 0); #expect(ok) }
        do { let ok = b.take(1, now: 0); #expect(!ok) }
        do { let ok = b.take(6, now: 500_000_000); #expect(!ok, "half a second brings 5 tokens") }
        do { let ok = b.take(5, now: 500_000_000); #expect(ok) }
        do { let ok = b.take(20, now: 10_000_000_000); #expect(ok, "refill stops at capacity") }
        do { let ok = b.take(1, now: 10_000_000_000); #expect(!ok) }
    }

    @Test func aRequestLargerThanCapacityNeverPasses() {
        var b = TokenBucket(rate: 100, capacity: 10, now: 0)
        do { let ok = b.take(11, now: 60_000_000_000); #expect(!ok) }
        do { let ok = b.take(10, now: 60_000_000_000); #expect(ok) }
    }
}
