import Testing

@testable import Commands

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The raw inputs of a policy, with sensible defaults, so each bad case changes one field.
struct PolicyArgs: Sendable, CustomStringConvertible {
    var waves: [Double] = [1, 10, 50, 100]
    var rate = 100
    var success = 0.95
    var failure = 0.2
    var minFailures = 3
    var health: (window: Int, exposure: Double, increase: Double, z: Double)? = nil
    var window: (start: Int, end: Int, idle: Int?)? = nil

    func make() throws(CommandError) -> RolloutPolicy {
        let h = try health.map { h throws(CommandError) in
            try HealthGate(windowMinutes: h.window, minExposureHours: h.exposure, maxRelativeIncrease: h.increase, confidence: h.z)
        }
        let w = try window.map { w throws(CommandError) in try MaintenanceWindow(startMinute: w.start, endMinute: w.end, idleMinutes: w.idle) }
        return try RolloutPolicy(
            waves: waves, ratePerMinute: rate, successThreshold: success, failureThreshold: failure,
            minFailureCount: minFailures, health: h, window: w)
    }

    var description: String {
        "waves \(waves) rate \(rate) success \(success) failure \(failure)/\(minFailures) health \(String(describing: health)) window \(String(describing: window))"
    }
}

private func policy(
    waves: [Double] = [1, 10, 50, 100], rate: Int = 100_000, success: Double = 1.0, failure: Double = 0.5,
    minFailures: Int = 3, onFailure: RolloutPolicy.OnFailure = .pause, health: HealthGate? = nil
) throws -> RolloutPolicy {
    try RolloutPolicy(
        waves: waves, ratePerMinute: rate, successThreshold: success, failureThreshold: failure,
        minFailureCount: minFailures, onFailure: onFailure, health: health)
}

/// Starts as many boxes as allowed (all eligible) and returns how many.
@discardableResult
private func startAllowed(_ m: inout RolloutMachine, now: Int64, eligible: Int = .max) -> Int {
    let n = m.next(now: now, eligible: eligible)
    m.started(n, now: now)
    return n
}

private func finish(_ m: inout RolloutMachine, successes: Int = 0, failures: Int = 0, now: Int64) {
    for _ in 0..<successes { m.finished(success: true, now: now) }
    for _ in 0..<failures { m.finished(success: false, now: now) }
}

private let minute: Int64 = 60_000

@Suite("Rollout policy")
struct RolloutPolicyTests {
    @Test func aValidPolicyKeepsItsValues() throws {
        var a = PolicyArgs()
        a.health = (60, 10, 0.5, 2.33)
        a.window = (120, 300, 30)
        let p = try a.make()
        #expect(p.waves == [1, 10, 50, 100])
        #expect(p.onFailure == .pause)
        #expect(p.health?.confidence == 2.33)
        #expect(p.window?.idleMinutes == 30)
        #expect(try RolloutPolicy(waves: [100], ratePerMinute: 1, successThreshold: 1, failureThreshold: 1, minFailureCount: 1).waves == [100])
    }

    static let bad: [(PolicyArgs, String)] = {
        func with(_ f: (inout PolicyArgs) -> Void) -> PolicyArgs { var a = PolicyArgs(); f(&a); return a }
        return [
            (with { $0.waves = [] }, "waves"),
            (with { $0.waves = [0, 50, 100] }, "waves[0]"),
            (with { $0.waves = [-1, 100] }, "waves[0]"),
            (with { $0.waves = [1, 10, 10, 100] }, "waves[2]"),
            (with { $0.waves = [1, 50, 20, 100] }, "waves[2]"),
            (with { $0.waves = [1, 10, 50] }, "waves[2]"),
            (with { $0.waves = [1, 10, 50, 101] }, "waves[3]"),
            (with { $0.waves = [1, .nan, 100] }, "waves[1]"),
            (with { $0.rate = 0 }, "ratePerMinute"),
            (with { $0.rate = 100_001 }, "ratePerMinute"),
            (with { $0.success = 0 }, "successThreshold"),
            (with { $0.success = 1.01 }, "successThreshold"),
            (with { $0.success = .nan }, "successThreshold"),
            (with { $0.failure = 0 }, "failureThreshold"),
            (with { $0.failure = 2 }, "failureThreshold"),
            (with { $0.minFailures = 0 }, "minFailureCount"),
            (with { $0.health = (0, 10, 0.5, 2.33) }, "health.windowMinutes"),
            (with { $0.health = (60, 0, 0.5, 2.33) }, "health.minExposureHours"),
            (with { $0.health = (60, 10, -0.1, 2.33) }, "health.maxRelativeIncrease"),
            (with { $0.health = (60, 10, 0.5, 0) }, "health.confidence"),
            (with { $0.window = (1440, 300, nil) }, "window.startMinute"),
            (with { $0.window = (-1, 300, nil) }, "window.startMinute"),
            (with { $0.window = (120, 1440, nil) }, "window.endMinute"),
            (with { $0.window = (120, 300, 0) }, "window.idleMinutes"),
        ]
    }()

    @Test(arguments: bad)
    func badPoliciesAreRefusedNamingTheField(args: PolicyArgs, field: String) {
        #expect(throws: CommandError.self) { try args.make() }
        do { _ = try args.make() } catch { #expect(error.field == field, "\(error)") }
    }

    @Test func wavesCapWithCeil() throws {
        let p = try policy()
        #expect(p.waveSizes(targetCount: 250) == [3, 25, 125, 250])
        #expect(p.waveSizes(targetCount: 10) == [1, 1, 5, 10])
        #expect(p.waveSizes(targetCount: 1) == [1, 1, 1, 1])
        #expect(p.waveSizes(targetCount: 0) == [0, 0, 0, 0])
        #expect(try policy(waves: [0.1, 7, 33.3, 100]).waveSizes(targetCount: 999) == [1, 70, 333, 999])
        #expect(try policy(waves: [0.1, 7, 33.3, 100]).waveSizes(targetCount: 100) == [1, 7, 34, 100])
    }

    @Test func policiesRoundTripThroughCodableAndDecodingValidates() throws {
        var a = PolicyArgs()
        a.health = (60, 10, 0.5, 2.33)
        a.window = (1380, 240, nil)
        let p = try a.make()
        let data = try JSONEncoder().encode(p)
        #expect(try JSONDecoder().decode(RolloutPolicy.self, from: data) == p)
        let bad = Data(#"{"waves":[1,10],"ratePerMinute":5,"successThreshold":1,"failureThreshold":1,"minFailureCount":1}"#.utf8)
        #expect(throws: CommandError("the last wave must be 100 (the whole target set), got 10.0", field: "waves[1]")) {
            try JSONDecoder().decode(RolloutPolicy.self, from: bad)
        }
    }
}

@Suite("Rollout machine")
struct RolloutMachineTests {
    @Test func nextIsLimitedByTheWaveCapAndEligibleBoxes() throws {
        var m = try RolloutMachine(policy: policy(), targetCount: 250, createdAt: 0)
        #expect(m.waves.map(\.target) == [3, 25, 125, 250])
        #expect(m.next(now: 0, eligible: 2) == 2)
        #expect(m.next(now: 0, eligible: 100) == 3)
        #expect(m.next(now: 0, eligible: -5) == 0)
        #expect(m.started(2, now: 0) == 0)
        #expect(m.next(now: 1, eligible: 100) == 1)
        m.started(1, now: 1)
        #expect(m.next(now: 2, eligible: 100) == 0)
        #expect(m.inFlight == 3)
    }

    @Test func theRateLimitHoldsOverSimulatedMinutes() throws {
        var m = try RolloutMachine(policy: policy(waves: [100], rate: 60), targetCount: 10_000, createdAt: 0)
        // A full bucket at the start: a burst of ratePerMinute.
        #expect(startAllowed(&m, now: 0) == 60)
        #expect(m.next(now: 0, eligible: 1000) == 0)
        #expect(m.next(now: 999, eligible: 1000) == 0)
        #expect(m.next(now: 1000, eligible: 1000) == 1)
        #expect(m.next(now: 30_000, eligible: 1000) == 30)
        // Then one per second: over 10 minutes, starting every second, 600 more, 60 a minute.
        var perMinute = [Int](repeating: 0, count: 10)
        for s in Int64(1)...600 {
            perMinute[Int((s - 1) / 60)] += startAllowed(&m, now: s * 1000)
        }
        #expect(perMinute == [Int](repeating: 60, count: 10))
        #expect(m.started == 660)
        // Idle for an hour: the bucket holds no more than its capacity.
        #expect(m.next(now: 600_000 + 60 * minute, eligible: 1000) == 60)
        #expect(m.next(now: 600_000 + 60 * minute, eligible: 7) == 7)
    }

    @Test func startingMoreThanAllowedDelaysTheNextOnes() throws {
        var m = try RolloutMachine(policy: policy(waves: [100], rate: 10), targetCount: 100, createdAt: 0)
        m.started(20, now: 0)  // 10 over
        #expect(m.next(now: minute, eligible: 100) == 0)
        #expect(m.next(now: 2 * minute, eligible: 100) == 10)
    }

    @Test func aWaveAdvancesAtItsSuccessThreshold() throws {
        var m = try RolloutMachine(policy: policy(waves: [10, 50, 100], success: 0.9), targetCount: 100, createdAt: 5)
        #expect(startAllowed(&m, now: 10) == 10)
        finish(&m, successes: 8, now: 20)
        #expect(m.currentWave == 0)
        #expect(m.next(now: 21, eligible: 100) == 0)
        m.finished(success: true, now: 30)  // 9 of 10 = 90 %
        #expect(m.currentWave == 1)
        #expect(m.waves[0].endedAt == 30)
        #expect(m.waves[0].startedAt == 5)
        #expect(m.waves[1].startedAt == 30)
        #expect(m.waves[1].endedAt == nil)
        #expect(m.next(now: 31, eligible: 1000) == 40)
        #expect(m.started(40, now: 31) == 1)
        // The straggler of wave 1 is counted there, even after the wave ended.
        m.finished(success: true, now: 32, wave: 0)
        #expect(m.waves[0].succeeded == 10)
        #expect(m.waves[1].succeeded == 0)
        // Wave 2 (50 cumulative) needs 45 successes in all.
        finish(&m, successes: 34, now: 40)
        #expect(m.succeeded == 44)
        #expect(m.currentWave == 1)
        m.finished(success: true, now: 41)
        #expect(m.currentWave == 2)
        #expect(m.waves.map(\.startedAt) == [5, 30, 41])
        #expect(m.waves.map(\.started) == [10, 40, 0])
        #expect(m.waves[1].succeeded == 35)
        #expect(m.state == .running)
    }

    @Test func wavesWithTheSameCapAreCrossedTogether() throws {
        var m = try RolloutMachine(policy: policy(), targetCount: 10, createdAt: 0)
        #expect(m.waves.map(\.target) == [1, 1, 5, 10])
        #expect(startAllowed(&m, now: 0) == 1)
        m.finished(success: true, now: 7)
        #expect(m.currentWave == 2)
        #expect(m.waves.map(\.endedAt) == [7, 7, nil, nil])
        #expect(m.next(now: 8, eligible: 100) == 4)
    }

    @Test func failuresPauseOnlyAfterMinFailureCount() throws {
        var m = try RolloutMachine(policy: policy(waves: [100], failure: 0.5, minFailures: 3), targetCount: 100, createdAt: 0)
        startAllowed(&m, now: 0, eligible: 20)
        finish(&m, failures: 2, now: 10)  // 100 % failed, but only 2
        #expect(m.state == .running)
        m.finished(success: false, now: 11)
        #expect(m.state == .paused(reason: "failure threshold: 3 of 3 finished installs failed (100 %, threshold 50 %, at least 3)"))
        #expect(m.next(now: 12, eligible: 100) == 0)
        // In-flight boxes are still counted while paused.
        m.finished(success: true, now: 13)
        #expect(m.finished == 4)
        #expect(m.history.map(\.state.name) == ["running", "paused"])
        #expect(m.history.map(\.at) == [0, 11])
    }

    @Test func failuresBelowTheRateDoNotPause() throws {
        var m = try RolloutMachine(policy: policy(waves: [100], failure: 0.5, minFailures: 3), targetCount: 100, createdAt: 0)
        startAllowed(&m, now: 0, eligible: 20)
        finish(&m, successes: 4, now: 1)
        finish(&m, failures: 3, now: 2)  // 3 of 7 < 50 %
        #expect(m.state == .running)
        m.finished(success: false, now: 3)  // 4 of 8 = 50 %
        #expect(m.state.name == "paused")
        // Resuming accepts them; the next failure checks again.
        try m.resume(now: 4)
        #expect(m.state == .running)
        m.finished(success: true, now: 5)
        #expect(m.state == .running)
        m.finished(success: false, now: 6)  // 5 of 10
        #expect(m.state.name == "paused")
        #expect(m.history.map(\.at) == [0, 3, 4, 6])
    }

    @Test func theAbortPolicyAborts() throws {
        var m = try RolloutMachine(policy: policy(waves: [100], failure: 0.3, minFailures: 2, onFailure: .abort), targetCount: 10, createdAt: 0)
        startAllowed(&m, now: 0)
        try m.pause(now: 1, reason: "lunch")
        finish(&m, successes: 2, failures: 1, now: 2)
        #expect(m.state == .paused(reason: "lunch"))
        m.finished(success: false, now: 3)  // 2 of 4 ≥ 30 %
        guard case .aborted(let reason) = m.state else { Issue.record("not aborted: \(m.state)"); return }
        #expect(reason.contains("2 of 4"))
        #expect(m.next(now: 4, eligible: 10) == 0)
        #expect(throws: CommandError.self) { try m.resume(now: 5) }
        // Results of boxes still in flight are recorded; no transition follows.
        finish(&m, successes: 6, now: 6)
        #expect(m.succeeded == 8)
        #expect(m.state.name == "aborted")
    }

    @Test func operatorControlsAreIdempotent() throws {
        var m = try RolloutMachine(policy: policy(), targetCount: 100, createdAt: 0)
        try m.resume(now: 1)  // running: nothing
        try m.pause(now: 2, reason: "first")
        try m.pause(now: 3, reason: "second")
        #expect(m.state == .paused(reason: "first"))
        try m.resume(now: 4)
        try m.resume(now: 5)
        try m.abort(now: 6, reason: "enough")
        try m.abort(now: 7, reason: "again")
        #expect(m.state == .aborted(reason: "enough"))
        #expect(m.history.map(\.state.name) == ["running", "paused", "running", "aborted"])
        #expect(m.history.map(\.at) == [0, 2, 4, 6])
        #expect(throws: CommandError.self) { try m.pause(now: 8, reason: "x") }
        #expect(throws: CommandError.self) { try m.resume(now: 8) }
    }

    @Test func aRolloutCompletesAfterItsLastWave() throws {
        var m = try RolloutMachine(policy: policy(waves: [50, 100]), targetCount: 4, createdAt: 100)
        #expect(startAllowed(&m, now: 100) == 2)
        finish(&m, successes: 2, now: 110)
        #expect(m.currentWave == 1)
        #expect(startAllowed(&m, now: 120) == 2)
        m.finished(success: true, now: 130)
        #expect(m.state == .running)
        m.finished(success: true, now: 140)
        #expect(m.state == .completed)
        #expect(m.waves.map(\.startedAt) == [100, 110])
        #expect(m.waves.map(\.endedAt) == [110, 140])
        #expect(m.history == [RolloutTransition(state: .running, at: 100), RolloutTransition(state: .completed, at: 140)])
        #expect(m.next(now: 150, eligible: 10) == 0)
        #expect(throws: CommandError.self) { try m.abort(now: 150, reason: "late") }
        // A duplicate report changes nothing.
        m.finished(success: false, now: 160)
        #expect(m.failed == 0)
    }

    @Test func theLastWaveCompletesWithFailuresBelowTheFailureRule() throws {
        var m = try RolloutMachine(policy: policy(waves: [100], success: 0.9, failure: 0.5, minFailures: 3), targetCount: 10, createdAt: 0)
        startAllowed(&m, now: 0)
        finish(&m, successes: 7, failures: 2, now: 1)
        #expect(m.state == .running)
        m.finished(success: true, now: 2)
        #expect(m.state == .completed)
        #expect(m.succeeded == 8 && m.failed == 2)
    }

    @Test func theLastWaveCompletesAtTheThresholdWhenNothingIsInFlight() throws {
        var m = try RolloutMachine(policy: policy(waves: [100], success: 0.5), targetCount: 10, createdAt: 0)
        startAllowed(&m, now: 0, eligible: 6)
        finish(&m, successes: 5, now: 1)
        #expect(m.state == .running)  // one still in flight
        m.finished(success: true, now: 2)
        #expect(m.state == .completed)
    }

    @Test func aWaveFinishedBelowTheThresholdPausesAndResumingMovesOn() throws {
        var m = try RolloutMachine(policy: policy(waves: [10, 100], success: 0.9, failure: 0.5, minFailures: 5), targetCount: 100, createdAt: 0)
        startAllowed(&m, now: 0)
        finish(&m, successes: 8, failures: 2, now: 1)
        #expect(m.state == .paused(reason: "wave 1 of 2 finished below the success threshold: 8 of 10 succeeded, 90 % needed"))
        #expect(m.currentWave == 0)
        try m.resume(now: 2)
        #expect(m.state == .running)
        #expect(m.currentWave == 1)
        #expect(m.waves[1].startedAt == 2)
        #expect(m.next(now: 3, eligible: 1000) == 90)
    }

    @Test func anEmptyTargetSetIsCompletedAtOnce() throws {
        let m = try RolloutMachine(policy: policy(), targetCount: 0, createdAt: 9)
        #expect(m.state == .completed)
        #expect(m.history.map(\.at) == [9, 9])
        #expect(throws: CommandError.self) { try RolloutMachine(policy: policy(), targetCount: -1, createdAt: 0) }
    }

    @Test func theMachineRoundTripsThroughCodable() throws {
        var m = try RolloutMachine(policy: policy(waves: [10, 100], rate: 30), targetCount: 50, createdAt: 0)
        startAllowed(&m, now: 0)
        finish(&m, successes: 3, failures: 1, now: 1000)
        try m.pause(now: 2000, reason: "check \"dashboards\"")
        let data = try JSONEncoder().encode(m)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""state":"paused""#))
        var back = try JSONDecoder().decode(RolloutMachine.self, from: data)
        #expect(back == m)
        try back.resume(now: 3000)
        try m.resume(now: 3000)
        #expect(back.next(now: 4000, eligible: 100) == m.next(now: 4000, eligible: 100))
    }
}

@Suite("Health gate")
struct HealthGateTests {
    let gate = try! HealthGate(windowMinutes: 60, minExposureHours: 50, maxRelativeIncrease: 0.5, confidence: 2.33)

    @Test func tooLittleExposureIsInsufficientData() {
        #expect(gate.evaluate(updated: CohortStats(boxHours: 49, crashes: 40), control: CohortStats(boxHours: 1000)) == .insufficientData)
        #expect(gate.evaluate(updated: CohortStats(boxHours: 100, crashes: 40), control: CohortStats(boxHours: 10)) == .insufficientData)
    }

    @Test func equalRatesAreHealthy() {
        let v = gate.evaluate(
            updated: CohortStats(boxHours: 100, crashes: 10, reboots: 20, playbackErrors: 300),
            control: CohortStats(boxHours: 1000, crashes: 100, reboots: 190, playbackErrors: 3100))
        #expect(v == .healthy)
    }

    @Test func aClearRegressionIsFound() throws {
        let v = gate.evaluate(updated: CohortStats(boxHours: 100, crashes: 30), control: CohortStats(boxHours: 100, crashes: 10))
        guard case .regression(let metric, let u, let c, let z) = v else { Issue.record("\(v)"); return }
        #expect(metric == "crashes")
        #expect(u == 0.3)
        #expect(c == 0.1)
        // Exact one-sided binomial tail P(X ≥ 30 | 40, 0.5) = 0.0011107, i.e. z = 3.0589.
        #expect(abs(z - 3.0589) < 0.001, "z = \(z)")
    }

    @Test func fewEventsAreNotSignificantEvenWhenTheRateQuadruples() {
        // 0.04 vs 0.01 per box-hour, but 3 events in all.
        let u = CohortStats(boxHours: 50, crashes: 2), c = CohortStats(boxHours: 100, crashes: 1)
        #expect(gate.evaluate(updated: u, control: c) == .healthy)
        let z = HealthGate.poissonZ(updatedEvents: 2, updatedExposure: 50, controlEvents: 1, controlExposure: 100)
        #expect(abs(z - 0.6456) < 0.001, "z = \(z)")
    }

    @Test func aSignificantButSmallIncreaseIsHealthy() {
        // +20 %, z ≈ 4.25: significant, but under maxRelativeIncrease.
        let u = CohortStats(boxHours: 100, playbackErrors: 1200), c = CohortStats(boxHours: 100, playbackErrors: 1000)
        #expect(gate.evaluate(updated: u, control: c) == .healthy)
        let z = HealthGate.poissonZ(updatedEvents: 1200, updatedExposure: 100, controlEvents: 1000, controlExposure: 100)
        #expect(abs(z - 4.2454) < 0.001, "z = \(z)")
    }

    @Test func theZFollowsTheExactBinomialTail() {
        // Values from the exact tail (Python, fractions): (k1, e1, k2, e2, z).
        let cases: [(Int, Double, Int, Double, Double)] = [
            (3, 10, 1, 100, 2.77029), (12, 100, 2, 100, 2.48543), (20, 100, 2, 100, 3.84385), (40, 100, 20, 100, 2.47058),
        ]
        for (k1, e1, k2, e2, expected) in cases {
            let z = HealthGate.poissonZ(updatedEvents: k1, updatedExposure: e1, controlEvents: k2, controlExposure: e2)
            #expect(abs(z - expected) < 0.001, "\(k1)/\(e1) vs \(k2)/\(e2): z = \(z), expected \(expected)")
        }
        #expect(HealthGate.poissonZ(updatedEvents: 0, updatedExposure: 10, controlEvents: 0, controlExposure: 10) == 0)
        #expect(HealthGate.poissonZ(updatedEvents: 1, updatedExposure: 100, controlEvents: 9, controlExposure: 100) < 0)
        // Huge counts stay finite and large.
        let big = HealthGate.poissonZ(updatedEvents: 5000, updatedExposure: 100, controlEvents: 100, controlExposure: 100)
        #expect(big > 30 && big.isFinite)
    }

    @Test func theWorstRegressingMetricIsReported() {
        let u = CohortStats(boxHours: 100, crashes: 12, reboots: 20, playbackErrors: 40)
        let c = CohortStats(boxHours: 100, crashes: 2, reboots: 2, playbackErrors: 20)
        guard case .regression(let metric, _, _, let z) = gate.evaluate(updated: u, control: c) else { Issue.record("no regression"); return }
        #expect(metric == "reboots")
        #expect(abs(z - 3.84385) < 0.001)
    }

    @Test func aRegressionPausesTheRollout() throws {
        var m = try RolloutMachine(policy: policy(health: gate), targetCount: 1000, createdAt: 0)
        let fine = m.evaluateHealth(updated: CohortStats(boxHours: 100, crashes: 1), control: CohortStats(boxHours: 900, crashes: 9), now: 1)
        #expect(fine == .healthy)
        #expect(m.state == .running)
        let bad = m.evaluateHealth(updated: CohortStats(boxHours: 100, crashes: 30), control: CohortStats(boxHours: 100, crashes: 10), now: 2)
        #expect(bad != .healthy)
        #expect(m.state == .paused(reason: "health regression: crashes at 0.3/box-hour on updated boxes vs 0.1 on the others (z = 3.06)"))
        #expect(m.history.last?.at == 2)
        var plain = try RolloutMachine(policy: policy(), targetCount: 10, createdAt: 0)
        #expect(plain.evaluateHealth(updated: CohortStats(boxHours: 100, crashes: 30), control: CohortStats(boxHours: 100), now: 1) == nil)
        #expect(plain.state == .running)
    }
}

@Suite("Maintenance window")
struct MaintenanceWindowTests {
    /// Milliseconds at hh:mm UTC on 2024-03-10 (day 19792).
    func at(_ h: Int, _ m: Int) -> Int64 { (19792 * 1440 + Int64(h * 60 + m)) * 60_000 }

    @Test func theLocalTimeMustBeInTheWindow() throws {
        let w = try MaintenanceWindow(startMinute: 120, endMinute: 300)
        #expect(!w.allows(nowMillis: at(1, 59), utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil))
        #expect(w.allows(nowMillis: at(2, 0), utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil))
        #expect(w.allows(nowMillis: at(4, 59) + 59_999, utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil))
        #expect(!w.allows(nowMillis: at(5, 0), utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil))
    }

    @Test func aWindowMayWrapPastMidnight() throws {
        let w = try MaintenanceWindow(startMinute: 1380, endMinute: 240)
        let inside = [(23, 0), (23, 59), (0, 0), (3, 59)], outside = [(22, 59), (4, 0), (12, 0)]
        for (h, m) in inside { #expect(w.allows(nowMillis: at(h, m), utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil), "\(h):\(m)") }
        for (h, m) in outside { #expect(!w.allows(nowMillis: at(h, m), utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil), "\(h):\(m)") }
        let allDay = try MaintenanceWindow(startMinute: 600, endMinute: 600)
        #expect(allDay.allows(nowMillis: at(13, 7), utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil))
    }

    @Test func theBoxsUtcOffsetGivesItsLocalTime() throws {
        let w = try MaintenanceWindow(startMinute: 120, endMinute: 300)
        #expect(w.allows(nowMillis: at(0, 30), utcOffsetMinutes: 120, inStandby: false, lastViewingMillis: nil))  // 02:30 in Athens
        #expect(!w.allows(nowMillis: at(0, 30), utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil))
        #expect(!w.allows(nowMillis: at(3, 0), utcOffsetMinutes: -300, inStandby: false, lastViewingMillis: nil))  // 22:00 the day before
        #expect(w.allows(nowMillis: at(7, 30), utcOffsetMinutes: -300, inStandby: false, lastViewingMillis: nil))  // 02:30 in New York
        #expect(w.allows(nowMillis: at(21, 0), utcOffsetMinutes: 330, inStandby: false, lastViewingMillis: nil))  // 02:30 next day in India
        #expect(MaintenanceWindow.localMinute(nowMillis: 0, utcOffsetMinutes: -1320) == 120)
        #expect(MaintenanceWindow.localMinute(nowMillis: -1, utcOffsetMinutes: 0) == 1439)
    }

    @Test func standbyAndIdleRules() throws {
        let now = at(3, 0), tenMinutesAgo = now - 10 * minute, anHourAgo = now - 60 * minute
        let standby = try MaintenanceWindow(startMinute: 120, endMinute: 300, requireStandby: true)
        #expect(standby.allows(nowMillis: now, utcOffsetMinutes: 0, inStandby: true, lastViewingMillis: tenMinutesAgo))
        #expect(!standby.allows(nowMillis: now, utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil))
        #expect(!standby.allows(nowMillis: at(12, 0), utcOffsetMinutes: 0, inStandby: true, lastViewingMillis: nil))

        let idle = try MaintenanceWindow(startMinute: 120, endMinute: 300, idleMinutes: 30)
        #expect(idle.allows(nowMillis: now, utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: nil))
        #expect(!idle.allows(nowMillis: now, utcOffsetMinutes: 0, inStandby: true, lastViewingMillis: tenMinutesAgo))
        #expect(idle.allows(nowMillis: now, utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: now - 30 * minute))
        #expect(!idle.allows(nowMillis: now, utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: now - 30 * minute + 1))

        let either = try MaintenanceWindow(startMinute: 120, endMinute: 300, requireStandby: true, idleMinutes: 30)
        #expect(either.allows(nowMillis: now, utcOffsetMinutes: 0, inStandby: true, lastViewingMillis: tenMinutesAgo))
        #expect(either.allows(nowMillis: now, utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: anHourAgo))
        #expect(!either.allows(nowMillis: now, utcOffsetMinutes: 0, inStandby: false, lastViewingMillis: tenMinutesAgo))
    }
}
