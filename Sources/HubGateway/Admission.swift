import ArgusStore
import ArgusSupport
import Atomics
import Logging
import Metrics
import NIOHTTP1
import STBProtocol
import Synchronization

/// Why an upgrade was refused; decided before any upgrade happens. Every refusal is counted
/// by ``reason`` in `argus_gateway_refused_total{reason}` and logged at a bounded rate.
package enum HandshakeRejection: Equatable, CaseIterable {
    case notFound
    case unauthorized
    case overCapacity
    case draining
    case storeUnavailable
    /// As many credential lookups are in flight as the store can serve: refused at once
    /// rather than queued into a timeout.
    case verifyBusy
    /// The store did not answer a credential lookup within the verification deadline.
    case verifyTimeout
    /// Too many failed handshakes from this source address lately: refused without a store
    /// read, so a brute force costs the hub nothing and never delays valid boxes.
    case tooManyFailures

    package var status: HTTPResponseStatus {
        switch self {
        case .notFound: .notFound
        case .unauthorized: .unauthorized
        case .overCapacity, .draining, .storeUnavailable, .verifyBusy, .verifyTimeout: .serviceUnavailable
        case .tooManyFailures: .tooManyRequests
        }
    }

    package var reason: String {
        switch self {
        case .notFound: "not_found"
        case .unauthorized: "unauthorized"
        case .overCapacity: "over_capacity"
        case .draining: "draining"
        case .storeUnavailable: "store_unavailable"
        case .verifyBusy: "verify_busy"
        case .verifyTimeout: "verify_timeout"
        case .tooManyFailures: "too_many_failures"
        }
    }

    package var message: String {
        switch self {
        case .notFound: "not found; boxes connect to /v1/stb"
        case .unauthorized: "missing or wrong device credentials"
        case .overCapacity: "hub at connection capacity; retry later"
        case .draining: "hub shutting down; retry later"
        case .storeUnavailable: "device registry unavailable; retry later"
        case .verifyBusy: "hub busy verifying other boxes; retry after the given delay"
        case .verifyTimeout: "device registry too slow to answer; retry later"
        case .tooManyFailures: "too many failed handshakes from this address; retry later"
        }
    }

    /// Seconds for `Retry-After`, jittered so that refused boxes do not all come back in the
    /// same second: a busy verifier frees up within seconds, the other causes take longer.
    package func retryAfter(base: Int) -> Int? {
        switch self {
        case .notFound, .unauthorized: nil
        case .verifyBusy: Int.random(in: 1...max(2, base / 3))
        case .tooManyFailures: Int.random(in: 5...15)
        case .overCapacity, .draining, .storeUnavailable, .verifyTimeout: Int.random(in: max(1, base / 2)...max(2, base * 3 / 2))
        }
    }
}

/// Counts refused handshakes by reason (every reason exported from the start, at 0) and
/// logs them at most once per 10 s, with how many were folded into the line.
package final class GatewayRefusals: Sendable {
    private let counters: [String: Counter]
    private let dropped = Counter(label: "argus_gateway_refused_total", dimensions: [("reason", "dropped")])
    private let log = RateLimitedLog()
    private let logger: Logger

    package init(logger: Logger) {
        var c: [String: Counter] = [:]
        for r in HandshakeRejection.allCases { c[r.reason] = Counter(label: "argus_gateway_refused_total", dimensions: [("reason", r.reason)]) }
        counters = c
        self.logger = logger
    }

    package func count(_ r: HandshakeRejection) {
        counters[r.reason]?.increment()
        note(r.reason)
    }

    /// A socket closed without reading, far past the cap (or past it while draining).
    package func countDropped() {
        dropped.increment()
        note("dropped")
    }

    private func note(_ reason: String) {
        log.event { folded in
            logger.notice("device handshake refused", metadata: [LogKey.reason: .string(reason), LogKey.refusalsFolded: .stringConvertible(folded)])
        }
    }
}

/// Admits credential lookups at the rate the store can serve them: at most `limit` in
/// flight; a handshake past that is refused at once (503 + `Retry-After`) instead of waiting
/// in a queue until its socket times out.
package final class VerificationLimiter: Sendable {
    package let limit: Int
    private let inFlight = ManagedAtomic<Int>(0)
    private let gauge = Gauge(label: "argus_gateway_verifications_in_flight")

    package init(limit: Int) { self.limit = max(1, limit) }

    package func tryAcquire() -> Bool {
        let n = inFlight.wrappingIncrementThenLoad(ordering: .relaxed)
        if n > limit {
            inFlight.wrappingDecrement(ordering: .relaxed)
            return false
        }
        gauge.record(n)
        return true
    }

    package func release() { gauge.record(inFlight.wrappingDecrementThenLoad(ordering: .relaxed)) }

    package var current: Int { inFlight.load(ordering: .relaxed) }
}

/// Secret hashes this node verified against the store, so a reconnecting known box costs no
/// store read.
///
/// - An entry is trusted for `ttl` (default 10 min) after the store confirmed it; after that
///   the store is asked again. While the store cannot answer, entries up to `fallbackTTL`
///   (default 1 h) old still let known boxes in.
/// - Revocation removes the entry on every node: the revoking node at once, the others from
///   the `revocations` change stream or, failing that, by polling (``RevocationFeed``).
/// - Bounded: at most `limit` entries (default 200,000); past it the oldest are evicted.
///   An entry is the box id, a 32-byte SHA-256 and a timestamp: about 150 bytes with the
///   dictionary's overhead for a 16-character id, so 30 MB when full.
package final class CredentialCache: Sendable {
    package struct Entry: Sendable {
        package var hash: [UInt8]
        package var verifiedAt: ContinuousClock.Instant
    }
    private struct State {
        var entries: [String: Entry] = [:]
        /// Insertion order, for eviction; ids whose entry was replaced or removed are skipped.
        var order: [String] = []
        var head = 0
    }
    package let ttl: Duration
    package let fallbackTTL: Duration
    package let limit: Int
    private let state = Mutex(State())

    package init(ttl: Duration = .seconds(600), fallbackTTL: Duration = .seconds(3600), limit: Int = 200_000) {
        self.ttl = ttl
        self.fallbackTTL = fallbackTTL
        self.limit = max(1, limit)
    }

    package enum Lookup: Equatable { case match, mismatch, unknown }

    /// Checks a secret against a fresh entry (younger than `maxAge`), in constant time.
    package func check(_ id: String, secret: String, maxAge: Duration, now: ContinuousClock.Instant = .now) -> Lookup {
        guard let e = state.withLock({ $0.entries[id] }), now - e.verifiedAt < maxAge else { return .unknown }
        return Secrets.constantTimeEquals(Secrets.sha256(secret), e.hash) ? .match : .mismatch
    }

    package func remember(_ id: String, secret: String, now: ContinuousClock.Instant = .now) {
        let hash = Secrets.sha256(secret)
        state.withLock { s in
            if s.entries.updateValue(Entry(hash: hash, verifiedAt: now), forKey: id) == nil { s.order.append(id) }
            while s.entries.count > limit, s.head < s.order.count {
                s.entries[s.order[s.head]] = nil
                s.head += 1
            }
            if s.head > 4096, s.head * 2 > s.order.count {
                s.order = s.order[s.head...].filter { s.entries[$0] != nil }
                s.head = 0
            }
        }
    }

    /// Drops a box (revoked, deleted, or its secret did not match the store).
    package func forget(_ id: String) { _ = state.withLock { $0.entries.removeValue(forKey: id) } }

    package var count: Int { state.withLock { $0.entries.count } }
}

/// Failed handshakes (wrong or missing credentials) per source address, as a token bucket:
/// `burst` failures at once, then `perSecond`. An address with no tokens left is answered 429
/// before any credential check. Bounded to `maxAddresses` (full buckets are dropped first,
/// then the oldest), so a flood from many addresses cannot grow it.
package final class FailedHandshakeLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var at: ContinuousClock.Instant
    }
    package let burst: Double
    package let perSecond: Double
    package let maxAddresses: Int
    private let state = Mutex<[String: Bucket]>([:])

    package init(burst: Int = 20, perSecond: Double = 1, maxAddresses: Int = 10_000) {
        self.burst = Double(max(1, burst))
        self.perSecond = perSecond
        self.maxAddresses = max(1, maxAddresses)
    }

    private func refilled(_ b: Bucket, _ now: ContinuousClock.Instant) -> Double {
        let d = now - b.at
        let secs = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        return min(burst, b.tokens + secs * perSecond)
    }

    /// True when the address has used up its failures.
    package func isLimited(_ address: String, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { s in s[address].map { refilled($0, now) < 1 } ?? false }
    }

    package func recordFailure(_ address: String, now: ContinuousClock.Instant = .now) {
        state.withLock { s in
            let tokens = s[address].map { refilled($0, now) } ?? burst
            s[address] = Bucket(tokens: max(0, tokens - 1), at: now)
            if s.count > maxAddresses {
                let full = s.filter { refilled($0.value, now) >= burst }.map(\.key)
                for k in full.prefix(s.count - maxAddresses) { s[k] = nil }
                while s.count > maxAddresses, let oldest = s.min(by: { $0.value.at < $1.value.at })?.key { s[oldest] = nil }
            }
        }
    }

    package var addresses: Int { state.withLock { $0.count } }
}
