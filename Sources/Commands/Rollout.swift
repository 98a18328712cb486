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
