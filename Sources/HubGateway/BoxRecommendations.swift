import Metrics
import NIOCore
import STBProtocol
import Synchronization
import Telemetry

/// Where the gateway gets a box's recommendations (protocol 1.2, `recommendations`): the same
/// answer as the operator API's `GET /api/v1/devices/{id}/recommendations`, as JSON. The
/// composition implements it over the recommendation service, so the gateway does not import it.
package protocol SessionRecommendations: Sendable {
    /// The answer for `device`, whose hello named hardware `model` (its cold-start segment).
    func recommendations(device: String, model: String, n: Int) async throws -> JSONValue
}

/// The bounds on boxes' `recommendations` requests, shared by a node's sessions: each session
/// has one request in flight at most and a token bucket (`burst`, then one per
/// `1 / perSecond` s); the node answers at most `maxInFlight` at once. A request over a bound is
/// answered at once with an error frame (`rate_limited` for the session's bounds,
/// `unavailable` for the node's) and costs nothing else.
package final class RecommendationRequests: Sendable {
    package let source: any SessionRecommendations
    package let maxInFlight: Int
    package let perSecond: Double
    package let burst: Int
    private let inFlight = Atomic<Int>(0)
    package let answered = Counter(label: "argus_gateway_recommendations_total", dimensions: [("result", "answered")])
    package let failed = Counter(label: "argus_gateway_recommendations_total", dimensions: [("result", "failed")])
    package let refusedRate = Counter(label: "argus_gateway_recommendations_total", dimensions: [("result", "rate_limited")])
    package let refusedBusy = Counter(label: "argus_gateway_recommendations_total", dimensions: [("result", "busy")])

    package init(source: any SessionRecommendations, maxInFlight: Int = 64, perSecond: Double = 0.2, burst: Int = 5) {
        self.source = source
        self.maxInFlight = max(1, maxInFlight)
        self.perSecond = perSecond
        self.burst = max(1, burst)
    }

    /// A new session's bucket.
    func bucket(now: UInt64) -> TokenBucket { TokenBucket(rate: perSecond, capacity: Double(burst), now: now) }

    /// Takes a node-wide slot, or returns false when `maxInFlight` are taken.
    func enter() -> Bool {
        var current = inFlight.load(ordering: .relaxed)
        while current < maxInFlight {
            let (exchanged, original) = inFlight.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func leave() { inFlight.subtract(1, ordering: .acquiringAndReleasing) }

    /// Requests being answered on this node now.
    package var current: Int { inFlight.load(ordering: .relaxed) }
}
