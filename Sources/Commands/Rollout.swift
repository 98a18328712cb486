#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Staged firmware rollouts, as pure value types: the policy an operator gives, the state
// machine that decides how many boxes may start now, the health gate that compares updated
// boxes with the rest, and the maintenance window a box must be in. Nothing here knows device
// ids, clocks or storage: times are milliseconds passed in by the caller (the same clock for
// one rollout), and the command service picks the boxes, runs the executions and stores the
// machine (it is `Codable`, made of plain values).

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

// MARK: - Maintenance window

/// When a box may start an install: its local time of day is in [startMinute, endMinute), and,
/// if asked, it is in standby or has not been watched for a while.
///
/// The window may wrap past midnight (`1380..<240` is 23:00–04:00); `startMinute == endMinute`
/// means the whole day (then only the standby and idle rules apply). When both
/// `requireStandby` and `idleMinutes` are set, either condition suffices: a box in standby, or
/// one nobody has watched for `idleMinutes`.
public struct MaintenanceWindow: Sendable, Equatable, Codable {
    /// Minutes after local midnight, 0..<1440; the window includes it.
    public let startMinute: Int
    /// Minutes after local midnight, 0..<1440; the window ends just before it.
    public let endMinute: Int
    /// The box must be in standby (or idle, if `idleMinutes` is set too).
    public let requireStandby: Bool
    /// The box must have had no viewing for this many minutes (or be in standby, if
    /// `requireStandby` is set too). A box never watched counts as idle.
    public let idleMinutes: Int?

    public init(startMinute: Int, endMinute: Int, requireStandby: Bool = false, idleMinutes: Int? = nil) throws(CommandError) {
        guard (0..<1440).contains(startMinute) else {
            throw CommandError("window.startMinute must be in 0..<1440 (minutes after local midnight), got \(startMinute)", field: "window.startMinute")
        }
        guard (0..<1440).contains(endMinute) else {
            throw CommandError("window.endMinute must be in 0..<1440 (minutes after local midnight), got \(endMinute)", field: "window.endMinute")
        }
        if let idleMinutes, !(1...10_080).contains(idleMinutes) {
            throw CommandError("window.idleMinutes must be in 1...10080 (a week), got \(idleMinutes)", field: "window.idleMinutes")
        }
        self.startMinute = startMinute
        self.endMinute = endMinute
        self.requireStandby = requireStandby
        self.idleMinutes = idleMinutes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            startMinute: c.decode(Int.self, forKey: .startMinute),
            endMinute: c.decode(Int.self, forKey: .endMinute),
            requireStandby: c.decodeIfPresent(Bool.self, forKey: .requireStandby) ?? false,
            idleMinutes: c.decodeIfPresent(Int.self, forKey: .idleMinutes))
    }

    /// Minutes after local midnight (0..<1440) at `nowMillis` (Unix epoch) for a box whose
    /// local time is UTC + `utcOffsetMinutes`.
    public static func localMinute(nowMillis: Int64, utcOffsetMinutes: Int) -> Int {
        let minutes = floorDiv(nowMillis, 60_000) + Int64(utcOffsetMinutes)
        let m = minutes % 1440
        return Int(m < 0 ? m + 1440 : m)
    }

    /// Whether the local minute of day is inside the window.
    public func contains(localMinute m: Int) -> Bool {
        if startMinute == endMinute { return true }
        if startMinute < endMinute { return m >= startMinute && m < endMinute }
        return m >= startMinute || m < endMinute  // wraps past midnight
    }

    /// Whether a box may start an install now. `lastViewingMillis` is when it was last watched
    /// (nil: never).
    public func allows(nowMillis: Int64, utcOffsetMinutes: Int, inStandby: Bool, lastViewingMillis: Int64?) -> Bool {
        guard contains(localMinute: Self.localMinute(nowMillis: nowMillis, utcOffsetMinutes: utcOffsetMinutes)) else { return false }
        guard requireStandby || idleMinutes != nil else { return true }
        if requireStandby && inStandby { return true }
        if let idleMinutes {
            guard let last = lastViewingMillis else { return true }
            return nowMillis - last >= Int64(idleMinutes) * 60_000
        }
        return false
    }
}

private func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

// MARK: - Health gate

/// Events of one cohort of boxes over the gate's window.
public struct CohortStats: Sendable, Equatable, Codable {
    /// Box-hours online in the window (the exposure).
    public var boxHours: Double
    public var crashes: Int
    public var reboots: Int
    public var playbackErrors: Int

    public init(boxHours: Double, crashes: Int = 0, reboots: Int = 0, playbackErrors: Int = 0) {
        self.boxHours = boxHours
        self.crashes = crashes
        self.reboots = reboots
        self.playbackErrors = playbackErrors
    }

    /// The metrics the gate compares, by name.
    public var metrics: [(name: String, events: Int)] {
        [("crashes", crashes), ("reboots", reboots), ("playbackErrors", playbackErrors)]
    }
}

/// What the health gate concluded.
public enum HealthVerdict: Sendable, Equatable {
    /// A cohort has less than `minExposureHours` box-hours: no judgement yet.
    case insufficientData
    case healthy
    /// The updated boxes have a significantly and materially higher rate of `metric` (events
    /// per box-hour) than the boxes not yet updated.
    case regression(metric: String, updatedRate: Double, controlRate: Double, z: Double)
}

/// Compares the event rates of the updated boxes with those of the boxes not yet updated,
/// over the same window (`windowMinutes`, which the caller uses to gather the two
/// `CohortStats`).
///
/// For each metric, events are taken as Poisson with exposure in box-hours. Given the total
/// k = k₁ + k₂, under "same rate" the updated cohort's count is k₁ ~ Binomial(k, e₁/(e₁+e₂)).
/// The one-sided tail P(X ≥ k₁) is computed exactly (up to 50 000 events, beyond which the
/// normal approximation with continuity correction is used) and reported as the equivalent
/// normal z, so few events give the small z they deserve. A metric regresses when
/// z ≥ `confidence` AND updatedRate > controlRate × (1 + `maxRelativeIncrease`): significant
/// and large enough to matter. Of several regressing metrics, the one with the largest z wins.
public struct HealthGate: Sendable, Equatable, Codable {
    /// The window over which the caller gathers the cohorts' events, 1...10080 minutes.
    public let windowMinutes: Int
    /// Box-hours each cohort needs in the window before the gate judges, > 0.
    public let minExposureHours: Double
    /// How much higher the updated rate must be to count, ≥ 0 (0.5 = +50 %).
    public let maxRelativeIncrease: Double
    /// The z a regression must reach, > 0 (2.33 ≈ one-sided 99 %).
    public let confidence: Double

    public init(windowMinutes: Int, minExposureHours: Double, maxRelativeIncrease: Double, confidence: Double) throws(CommandError) {
        guard (1...10_080).contains(windowMinutes) else {
            throw CommandError("health.windowMinutes must be in 1...10080, got \(windowMinutes)", field: "health.windowMinutes")
        }
        guard minExposureHours > 0, minExposureHours.isFinite else {
            throw CommandError("health.minExposureHours must be a positive number of box-hours, got \(minExposureHours)", field: "health.minExposureHours")
        }
        guard maxRelativeIncrease >= 0, maxRelativeIncrease.isFinite else {
            throw CommandError("health.maxRelativeIncrease must be 0 or more (0.5 = +50 %), got \(maxRelativeIncrease)", field: "health.maxRelativeIncrease")
        }
        guard confidence > 0, confidence <= 40 else {
            throw CommandError("health.confidence must be a z in (0, 40], e.g. 2.33, got \(confidence)", field: "health.confidence")
        }
        self.windowMinutes = windowMinutes
        self.minExposureHours = minExposureHours
        self.maxRelativeIncrease = maxRelativeIncrease
        self.confidence = confidence
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            windowMinutes: c.decode(Int.self, forKey: .windowMinutes),
            minExposureHours: c.decode(Double.self, forKey: .minExposureHours),
            maxRelativeIncrease: c.decode(Double.self, forKey: .maxRelativeIncrease),
            confidence: c.decode(Double.self, forKey: .confidence))
    }

    public func evaluate(updated: CohortStats, control: CohortStats) -> HealthVerdict {
        guard updated.boxHours >= minExposureHours, control.boxHours >= minExposureHours else { return .insufficientData }
        var worst: HealthVerdict = .healthy
        var worstZ = -Double.infinity
        for (u, c) in zip(updated.metrics, control.metrics) {
            let updatedRate = Double(u.events) / updated.boxHours
            let controlRate = Double(c.events) / control.boxHours
            guard updatedRate > controlRate * (1 + maxRelativeIncrease) else { continue }
            let z = Self.poissonZ(
                updatedEvents: u.events, updatedExposure: updated.boxHours,
                controlEvents: c.events, controlExposure: control.boxHours)
            if z >= confidence, z > worstZ {
                worstZ = z
                worst = .regression(metric: u.name, updatedRate: updatedRate, controlRate: controlRate, z: z)
            }
        }
        return worst
    }

    /// The z of the one-sided test "the first cohort's rate is higher" (conditional binomial
    /// test, see the type's documentation). 0 when there are no events; negative when the
    /// first cohort has fewer events than expected.
    public static func poissonZ(updatedEvents k1: Int, updatedExposure e1: Double, controlEvents k2: Int, controlExposure e2: Double) -> Double {
        let k = max(0, k1) + max(0, k2)
        guard k > 0, e1 > 0, e2 > 0 else { return 0 }
        let p = e1 / (e1 + e2)
        let mean = Double(k) * p
        let sd = (mean * (1 - p)).squareRoot()
        guard Double(k1) > mean else { return (Double(k1) - mean) / sd }
        if k > 50_000 { return (Double(k1) - 0.5 - mean) / sd }
        return upperTailZ(logTail: logBinomialUpperTail(k: k, n: k1, p: p))
    }
}

/// log P(X ≥ n) for X ~ Binomial(k, p), summing the terms in log space.
func logBinomialUpperTail(k: Int, n: Int, p: Double) -> Double {
    guard n > 0 else { return 0 }
    guard n <= k else { return -.infinity }
    var logC = 0.0  // log C(k, n)
    for i in 1...n { logC += log(Double(k - n + i)) - log(Double(i)) }
    let logP = log(p), logQ = log1p(-p)
    var term = logC + Double(n) * logP + Double(k - n) * logQ
    var maxTerm = term, sum = 1.0  // sum of exp(term - maxTerm)
    var j = n
    while j < k {
        term += log(Double(k - j)) - log(Double(j + 1)) + logP - logQ
        j += 1
        if term > maxTerm {
            sum = sum * exp(maxTerm - term) + 1
            maxTerm = term
        } else {
            sum += exp(term - maxTerm)
        }
    }
    return maxTerm + log(sum)
}

/// The z with P(Z ≥ z) = exp(logTail) for a standard normal Z.
func upperTailZ(logTail: Double) -> Double {
    if logTail >= 0 { return -.infinity }
    if logTail < -700 {
        // Far beyond any confidence anyone asks for: the asymptotic expansion is plenty.
        let l = -2 * logTail
        return (l - log(l) - log(2 * Double.pi)).squareRoot()
    }
    let q = exp(logTail)
    if q >= 0.5 { return -inverseNormalCDF(1 - q) }
    return -inverseNormalCDF(q)
}

/// Φ⁻¹(p) for 0 < p < 1 (Acklam's rational approximation, refined by one Halley step).
func inverseNormalCDF(_ p: Double) -> Double {
    let a = [
        -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
        1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00,
    ]
    let b = [
        -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
        6.680131188771972e+01, -1.328068155288572e+01,
    ]
    let c = [
        -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
        -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00,
    ]
    let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    let low = 0.02425
    var x: Double
    if p < low {
        let q = (-2 * log(p)).squareRoot()
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    } else if p <= 1 - low {
        let q = p - 0.5, r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    } else {
        let q = (-2 * log1p(-p)).squareRoot()
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    }
    let e = 0.5 * erfc(-x / 2.0.squareRoot()) - p
    let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
    x -= u / (1 + x * u / 2)
    return x
}

// MARK: - State machine

/// Where a rollout is.
public enum RolloutState: Sendable, Equatable, Codable {
    case running
    case paused(reason: String)
    case aborted(reason: String)
    case completed

    /// `running`, `paused`, `aborted` or `completed`.
    public var name: String {
        switch self {
        case .running: return "running"
        case .paused: return "paused"
        case .aborted: return "aborted"
        case .completed: return "completed"
        }
    }

    public var reason: String? {
        switch self {
        case .paused(let r), .aborted(let r): return r
        case .running, .completed: return nil
        }
    }

    init(name: String, reason: String?) throws(CommandError) {
        switch name {
        case "running": self = .running
        case "paused": self = .paused(reason: reason ?? "")
        case "aborted": self = .aborted(reason: reason ?? "")
        case "completed": self = .completed
        default: throw CommandError("unknown rollout state \"\(name)\"", field: "state")
        }
    }

    private enum CodingKeys: String, CodingKey { case state, reason }

    /// Stored flat: `{"state": "paused", "reason": "…"}`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(name: c.decode(String.self, forKey: .state), reason: c.decodeIfPresent(String.self, forKey: .reason))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .state)
        try c.encodeIfPresent(reason, forKey: .reason)
    }
}

/// One entry of a rollout's history.
public struct RolloutTransition: Sendable, Equatable, Codable {
    public var state: RolloutState
    public var at: Int64

    public init(state: RolloutState, at: Int64) {
        self.state = state
        self.at = at
    }

    private enum CodingKeys: String, CodingKey { case state, reason, at }

    /// Stored flat: `{"state": "paused", "reason": "…", "at": 1700000000000}`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        state = try RolloutState(name: c.decode(String.self, forKey: .state), reason: c.decodeIfPresent(String.self, forKey: .reason))
        at = try c.decode(Int64.self, forKey: .at)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(state.name, forKey: .state)
        try c.encodeIfPresent(state.reason, forKey: .reason)
        try c.encode(at, forKey: .at)
    }
}

/// The progress of one wave. `target` is cumulative (the whole rollout's cap while this wave
/// is current); `started`, `succeeded` and `failed` count the boxes started while it was
/// current.
public struct WaveProgress: Sendable, Equatable, Codable {
    /// The wave's cumulative percentage.
    public let percent: Double
    /// The wave's cumulative size, `ceil(percent × N / 100)`.
    public let target: Int
    public internal(set) var started = 0
    public internal(set) var succeeded = 0
    public internal(set) var failed = 0
    /// When the wave became current (nil: not yet).
    public internal(set) var startedAt: Int64?
    /// When the next wave took over or the rollout completed (nil: not yet, or never).
    public internal(set) var endedAt: Int64?

    public var finished: Int { succeeded + failed }
    public var inFlight: Int { max(0, started - finished) }

    public init(percent: Double, target: Int) {
        self.percent = percent
        self.target = target
    }
}

/// One rollout as a value type: the command service asks it how many boxes to start, tells it
/// what happened, and stores it. It does not know device ids; the caller picks the boxes
/// (those its `policy.window` allows) and may remember each box's wave (`started` returns it).
///
/// running --(failure rule | health regression | operator)--> paused --resume--> running
/// running|paused --(failure rule with onFailure = abort | operator)--> aborted
/// running --(last wave done)--> completed
///
/// Waves: the current wave caps the boxes started so far at its cumulative size. It ends when
/// the rollout's successes reach `successThreshold` of that size (boxes still in flight carry
/// on); the next wave begins at once. If the wave's boxes have all finished below the
/// threshold, the rollout pauses; resuming then moves on to the next wave (the operator
/// accepts the failures). The rollout completes when, in the last wave, nothing is in flight
/// and either all N boxes were started or the successes reach `successThreshold` of N.
///
/// The failure rule is checked on each failure, while running or paused: once failures reach
/// `minFailureCount` and `failed / finished >= failureThreshold`, a running rollout pauses, or,
/// with `onFailure == .abort`, a running or paused one aborts. After an operator resumes, the
/// next failure checks it again.
public struct RolloutMachine: Sendable, Equatable, Codable {
    public let policy: RolloutPolicy
    /// N, the size of the target set.
    public let targetCount: Int
    public let createdAt: Int64
    public private(set) var state: RolloutState
    /// Every state change, with its time; starts with `running` at `createdAt`.
    public private(set) var history: [RolloutTransition]
    public private(set) var waves: [WaveProgress]
    /// The index of the current wave in `waves`.
    public private(set) var currentWave: Int
    /// Token bucket, in 1/60 000 of a token so that refilling is exact integer arithmetic:
    /// `ratePerMinute` units per millisecond.
    private var bucketUnits: Int64
    private var bucketUpdatedAt: Int64

    private static let unitsPerToken: Int64 = 60_000

    /// A rollout of `targetCount` boxes, running from `createdAt` with a full token bucket.
    /// With no boxes it is completed at once.
    public init(policy: RolloutPolicy, targetCount: Int, createdAt: Int64) throws(CommandError) {
        guard targetCount >= 0 else { throw CommandError("targetCount must be 0 or more, got \(targetCount)", field: "targetCount") }
        self.policy = policy
        self.targetCount = targetCount
        self.createdAt = createdAt
        state = .running
        history = [RolloutTransition(state: .running, at: createdAt)]
        let sizes = policy.waveSizes(targetCount: targetCount)
        waves = zip(policy.waves, sizes).map { WaveProgress(percent: $0, target: $1) }
        currentWave = 0
        waves[0].startedAt = createdAt
        bucketUnits = Int64(policy.ratePerMinute) * Self.unitsPerToken
        bucketUpdatedAt = createdAt
        if targetCount == 0 {
            for i in waves.indices {
                waves[i].startedAt = createdAt
                waves[i].endedAt = createdAt
            }
            currentWave = waves.count - 1
            move(.completed, createdAt)
        }
    }

    // MARK: Totals

    public var started: Int { waves.reduce(0) { $0 + $1.started } }
    public var succeeded: Int { waves.reduce(0) { $0 + $1.succeeded } }
    public var failed: Int { waves.reduce(0) { $0 + $1.failed } }
    public var finished: Int { succeeded + failed }
    public var inFlight: Int { waves.reduce(0) { $0 + $1.inFlight } }
    /// Whole tokens in the bucket at the last input (refilled on each input).
    public var availableTokens: Int { Int(max(0, bucketUnits) / Self.unitsPerToken) }

    // MARK: Inputs

    /// How many new boxes may start now: the current wave's remaining cap, the token bucket,
    /// and `eligible` (the boxes the caller has that the maintenance window allows now), and
    /// 0 unless running. The caller then starts that many (or fewer) and calls `started`.
    public mutating func next(now: Int64, eligible: Int) -> Int {
        refill(now)
        guard state == .running else { return 0 }
        let capLeft = waves[currentWave].target - started
        let tokens = bucketUnits / Self.unitsPerToken
        return max(0, min(capLeft, Int(tokens), eligible))
    }

    /// The caller started `n` boxes; returns the index of the wave they belong to. The machine
    /// records what it is told (and its bucket may go negative if more were started than
    /// `next` allowed, delaying the next ones accordingly).
    @discardableResult
    public mutating func started(_ n: Int, now: Int64) -> Int {
        refill(now)
        guard n > 0 else { return currentWave }
        bucketUnits -= Int64(n) * Self.unitsPerToken
        waves[currentWave].started += n
        return currentWave
    }

    /// One box's install finished. `wave` is the index `started` returned for it; without it
    /// the box is counted in the oldest wave with boxes in flight. A report with nothing in
    /// flight (in that wave) is a duplicate and is ignored.
    public mutating func finished(success: Bool, now: Int64, wave: Int? = nil) {
        refill(now)
        let w: Int
        if let wave {
            guard waves.indices.contains(wave), waves[wave].inFlight > 0 else { return }
            w = wave
        } else {
            guard let first = waves.firstIndex(where: { $0.inFlight > 0 }) else { return }
            w = first
        }
        if success {
            waves[w].succeeded += 1
        } else {
            waves[w].failed += 1
            checkFailureRule(now)
        }
        settle(now, override: false)
    }

    /// Runs the policy's health gate; a regression pauses a running rollout, with a reason
    /// naming the metric and the two rates. Returns nil when the policy has no gate.
    @discardableResult
    public mutating func evaluateHealth(updated: CohortStats, control: CohortStats, now: Int64) -> HealthVerdict? {
        refill(now)
        guard let gate = policy.health else { return nil }
        let verdict = gate.evaluate(updated: updated, control: control)
        if case .regression(let metric, let u, let c, let z) = verdict, state == .running {
            move(.paused(reason: "health regression: \(metric) at \(fmt(u))/box-hour on updated boxes vs \(fmt(c)) on the others (z = \(fmt(z)))"), now)
        }
        return verdict
    }

    /// An operator pauses. Pausing a paused rollout changes nothing (the first reason stays);
    /// an aborted or completed one cannot be paused.
    public mutating func pause(now: Int64, reason: String) throws(CommandError) {
        refill(now)
        switch state {
        case .running: move(.paused(reason: reason), now)
        case .paused: return
        case .aborted, .completed: throw CommandError("cannot pause a rollout that is \(state.name)", field: "state")
        }
    }

    /// An operator resumes. Resuming a running rollout changes nothing; an aborted or completed
    /// one cannot be resumed. If the current wave's boxes have all finished below the success
    /// threshold, resuming moves on to the next wave (or completes the rollout).
    public mutating func resume(now: Int64) throws(CommandError) {
        refill(now)
        switch state {
        case .running: return
        case .paused:
            move(.running, now)
            settle(now, override: true)
        case .aborted, .completed: throw CommandError("cannot resume a rollout that is \(state.name)", field: "state")
        }
    }

    /// An operator aborts. Aborting an aborted rollout changes nothing; a completed one cannot
    /// be aborted. Boxes in flight carry on and their results are still counted.
    public mutating func abort(now: Int64, reason: String) throws(CommandError) {
        refill(now)
        switch state {
        case .running, .paused: move(.aborted(reason: reason), now)
        case .aborted: return
        case .completed: throw CommandError("cannot abort a completed rollout", field: "state")
        }
    }

    // MARK: Internals

    private mutating func move(_ s: RolloutState, _ now: Int64) {
        state = s
        history.append(RolloutTransition(state: s, at: now))
    }

    private mutating func refill(_ now: Int64) {
        let elapsed = now - bucketUpdatedAt
        guard elapsed > 0 else { return }  // a clock going backwards adds nothing
        let capacity = Int64(policy.ratePerMinute) * Self.unitsPerToken
        // Saturating: a long idle period must not overflow.
        let (added, overflow) = elapsed.multipliedReportingOverflow(by: Int64(policy.ratePerMinute))
        bucketUnits = overflow ? capacity : min(capacity, bucketUnits + min(added, capacity * 2))
        bucketUpdatedAt = now
    }

    private mutating func checkFailureRule(_ now: Int64) {
        let failed = self.failed, finished = self.finished
        guard failed >= policy.minFailureCount, finished > 0,
            Double(failed) / Double(finished) >= policy.failureThreshold
        else { return }
        let reason =
            "failure threshold: \(failed) of \(finished) finished installs failed (\(fmt(100 * Double(failed) / Double(finished))) %, threshold \(fmt(100 * policy.failureThreshold)) %, at least \(policy.minFailureCount))"
        switch (state, policy.onFailure) {
        case (.running, .pause): move(.paused(reason: reason), now)
        case (.running, .abort), (.paused, .abort): move(.aborted(reason: reason), now)
        default: return
        }
    }

    /// Advances waves and completes, while running. `override`: the operator accepts a wave
    /// whose boxes all finished below the success threshold.
    private mutating func settle(_ now: Int64, override: Bool) {
        while state == .running {
            let wave = waves[currentWave]
            let started = self.started, succeeded = self.succeeded, inFlight = self.inFlight
            let last = currentWave == waves.count - 1
            let reached = wave.target == 0 || Double(succeeded) / Double(wave.target) >= policy.successThreshold
            let exhausted = started >= wave.target && inFlight == 0
            if last {
                if inFlight == 0 && (started >= targetCount || reached) {
                    waves[currentWave].endedAt = now
                    move(.completed, now)
                }
                return
            }
            if reached || (exhausted && override) {
                waves[currentWave].endedAt = now
                currentWave += 1
                waves[currentWave].startedAt = now
                continue
            }
            if exhausted {
                move(
                    .paused(
                        reason:
                            "wave \(currentWave + 1) of \(waves.count) finished below the success threshold: \(succeeded) of \(wave.target) succeeded, \(fmt(100 * policy.successThreshold)) % needed"
                    ), now)
            }
            return
        }
    }
}

/// A short decimal rendering (about 3 significant digits) for reasons.
func fmt(_ x: Double) -> String {
    guard x.isFinite else { return "\(x)" }
    if x == 0 { return "0" }
    let magnitude = Int(log10(abs(x)).rounded(.down))
    let decimals = min(10, max(0, 2 - magnitude))
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int64((abs(x) * scale).rounded())
    let sign = x < 0 ? "-" : ""
    guard decimals > 0 else { return sign + String(scaled) }
    let unit = Int64(scale)
    var frac = String(scaled % unit)
    while frac.count < decimals { frac = "0" + frac }
    while frac.hasSuffix("0") { frac.removeLast() }
    return sign + String(scaled / unit) + (frac.isEmpty ? "" : "." + frac)
}
