#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Staged firmware rollouts: the health gate that compares updated boxes with the rest (see Rollout.swift for the whole)

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
