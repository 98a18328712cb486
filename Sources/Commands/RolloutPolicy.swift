#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Staged firmware rollouts: the policy an operator gives (see Rollout.swift for the whole)

// MARK: - Policy

/// How a rollout proceeds. Every value is checked when it is made (also when decoded), so an
/// invalid policy cannot exist; errors name the field at fault, e.g. `waves[2]`.
public struct RolloutPolicy: Sendable, Equatable, Codable {
    /// What happens when the failure rule trips.
    public enum OnFailure: String, Sendable, Equatable, Codable, CaseIterable {
        /// Stop starting boxes until an operator resumes.
        case pause
        /// Stop for good.
        case abort
    }

    /// Cumulative percentages of the target set, strictly increasing, each in (0, 100], the
    /// last exactly 100; e.g. `[1, 10, 50, 100]`.
    public let waves: [Double]
    /// New installs started per minute at most (a token bucket of this capacity, refilling
    /// continuously), 1...100 000.
    public let ratePerMinute: Int
    /// In (0, 1]: a wave is done when the rollout's successes reach this share of the wave's
    /// cumulative size (`succeeded / waveSize >= successThreshold`).
    public let successThreshold: Double
    /// In (0, 1]: with `minFailureCount`, the failure rule: once at least `minFailureCount`
    /// installs have failed and `failed / finished >= failureThreshold`, the rollout pauses
    /// (or aborts, see `onFailure`).
    public let failureThreshold: Double
    /// At least 1: so that one early failure (1 of 1 = 100 %) does not stop a rollout.
    public let minFailureCount: Int
    public let onFailure: OnFailure
    /// Compare updated boxes with the others and pause on a significant regression.
    public let health: HealthGate?
    /// When (box local time) and in which box state an install may start.
    public let window: MaintenanceWindow?

    public init(
        waves: [Double], ratePerMinute: Int, successThreshold: Double, failureThreshold: Double,
        minFailureCount: Int, onFailure: OnFailure = .pause, health: HealthGate? = nil,
        window: MaintenanceWindow? = nil
    ) throws(CommandError) {
        try Self.validate(
            waves: waves, ratePerMinute: ratePerMinute, successThreshold: successThreshold,
            failureThreshold: failureThreshold, minFailureCount: minFailureCount)
        self.waves = waves
        self.ratePerMinute = ratePerMinute
        self.successThreshold = successThreshold
        self.failureThreshold = failureThreshold
        self.minFailureCount = minFailureCount
        self.onFailure = onFailure
        self.health = health
        self.window = window
    }

    /// The checks of `init`, for callers that want them without building a policy.
    public static func validate(
        waves: [Double], ratePerMinute: Int, successThreshold: Double,
        failureThreshold: Double, minFailureCount: Int
    ) throws(CommandError) {
        guard !waves.isEmpty else { throw CommandError("waves must list at least one percentage (the last being 100)", field: "waves") }
        guard waves.count <= 100 else { throw CommandError("waves may list at most 100 percentages", field: "waves") }
        var previous = 0.0
        for (i, w) in waves.enumerated() {
            // Written so that NaN fails too.
            guard w > 0, w <= 100 else { throw CommandError("waves[\(i)] must be in (0, 100], got \(w)", field: "waves[\(i)]") }
            guard w > previous else {
                throw CommandError("waves must be strictly increasing: waves[\(i)] = \(w) after \(previous)", field: "waves[\(i)]")
            }
            previous = w
        }
        guard waves[waves.count - 1] == 100 else {
            throw CommandError("the last wave must be 100 (the whole target set), got \(waves[waves.count - 1])", field: "waves[\(waves.count - 1)]")
        }
        guard (1...100_000).contains(ratePerMinute) else {
            throw CommandError("ratePerMinute must be in 1...100000, got \(ratePerMinute)", field: "ratePerMinute")
        }
        guard successThreshold > 0, successThreshold <= 1 else {
            throw CommandError("successThreshold must be in (0, 1], got \(successThreshold)", field: "successThreshold")
        }
        guard failureThreshold > 0, failureThreshold <= 1 else {
            throw CommandError("failureThreshold must be in (0, 1], got \(failureThreshold)", field: "failureThreshold")
        }
        guard minFailureCount >= 1 else {
            throw CommandError("minFailureCount must be at least 1, got \(minFailureCount)", field: "minFailureCount")
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            waves: c.decode([Double].self, forKey: .waves),
            ratePerMinute: c.decode(Int.self, forKey: .ratePerMinute),
            successThreshold: c.decode(Double.self, forKey: .successThreshold),
            failureThreshold: c.decode(Double.self, forKey: .failureThreshold),
            minFailureCount: c.decode(Int.self, forKey: .minFailureCount),
            onFailure: c.decodeIfPresent(OnFailure.self, forKey: .onFailure) ?? .pause,
            health: c.decodeIfPresent(HealthGate.self, forKey: .health),
            window: c.decodeIfPresent(MaintenanceWindow.self, forKey: .window))
    }

    /// The cumulative number of boxes of each wave for a target set of `targetCount` boxes:
    /// `ceil(wave% × N / 100)`, at least 1 when N > 0, the last exactly N.
    public func waveSizes(targetCount n: Int) -> [Int] {
        guard n > 0 else { return waves.map { _ in 0 } }
        return waves.enumerated().map { i, w in
            if i == waves.count - 1 { return n }
            // The tolerance keeps 7 % of 100 at 7 when the product rounds to 7.000000000000001.
            let exact = w * Double(n) / 100
            return min(n, max(1, Int((exact - 1e-9).rounded(.up))))
        }
    }
}
