import ArgusStore
import ArgusSupport
import Foundation
import Logging
import Metrics
import MongoStore
import Ratings
import RatingsRuntime
import Recommend
import ServiceLifecycle
import Synchronization

/// How the trainer trains (docs/recommendations.md, "On the hub").
package struct RecommendSettings: Sendable {
    /// Time between scheduled trainings; a request through the API starts one at the next check.
    package var interval: Duration = .seconds(6 * 3600)
    /// How often the lease holder checks for a request.
    package var checkEvery: Duration = .seconds(5)
    package var leaseSeconds: TimeInterval = 600
    /// Days of viewing a model learns from.
    package var days = 28
    package var parameters: ALSParameters = {
        var p = ALSParameters()
        p.factors = 32
        p.iterations = 15
        p.regularization = 0.05
        return p
    }()
    package var scaling = ConfidenceScaling.logarithmic(alpha: 2, epsilon: 1)
    /// The share of each box's most recent channels held out to evaluate a version.
    package var holdoutFraction = 0.2
    /// A new version is promoted unless its held-out P@10 is below the current one's by more than this.
    package var promotionMargin = 0.01
    /// A box's most-watched items that "because you watched" is chosen from.
    package var reasonItems = 5
    package var keepVersions = 5

    package init() {}
}

/// Trains the channel model as a Service: only the node holding the `recommend_state` lease
/// trains, on a schedule and on request. Each training reads the last `days` of stored viewing as
/// per-box channel minutes (the ratings method's minute credit), evaluates on a time holdout
/// (ALS beside popularity), fits on everything, stores the version, and promotes it if its P@10
/// is not worse than the current one's by more than the margin. A training that fails (a NaN in
/// the factors, too little data) keeps the current version and says why in the progress.
package struct RecommendTrainer: Service {
    let store: RecommendStore
    let mongo: MongoStore
    let node: String
    let settings: RecommendSettings
    let logger: Logger
    let gate: ReadinessGate?
    let now: @Sendable () -> Int64
    let iterationGauge = Gauge(label: "argus_recommend_training_iteration")
    let lossGauge = Gauge(label: "argus_recommend_training_loss")
    let versionGauge = Gauge(label: "argus_recommend_model_version")
    let failures = Counter(label: "argus_recommend_training_failures_total")

    package init(
        store: MongoStore, node: String, settings: RecommendSettings = .init(), gate: ReadinessGate? = nil, logger: Logger,
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.store = RecommendStore(store: store)
        self.mongo = store
        self.node = node
        self.settings = settings
        self.gate = gate
        self.logger = logger
        self.now = now
    }

    package func run() async throws {
        if let gate {
            guard await cancelWhenGracefulShutdown({ await gate.wait() }) == true else { return }
        }
        try? await store.createIndexes()
        var lastTrained = ContinuousClock.now - settings.interval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if await store.lease.acquire(node: node, now: Date(), ttl: settings.leaseSeconds) {
                let requested = (try? await store.takeRequest()) ?? false
                if requested || ContinuousClock.now - lastTrained >= settings.interval {
                    lastTrained = ContinuousClock.now
                    do { _ = try await trainOnce() } catch let error as NotEnoughViewing {
                        logger.info("recommendation training skipped", metadata: [LogKey.reason: .string(error.description)])
                    } catch {
                        failures.increment()
                        logger.error("recommendation training failed", metadata: [LogKey.error: .string("\(error)")])
                    }
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.settings.checkEvery) }
        }
        await store.lease.release(node: node)
    }

    /// The viewing of the last `days` days as box × channel minutes (the latest minute as time).
    package func interactions() async throws -> InteractionLog { try await viewing().channels }

    /// One training; returns the version made, promoted or not.
    @discardableResult
    package func trainOnce() async throws -> Int {
        let version = try await store.nextVersion()
        let started = Date()
        var progress = TrainingProgress(
            phase: .reading, version: version, iteration: 0, iterations: settings.parameters.iterations, loss: nil, etaSeconds: nil, error: nil,
            startedAt: started, updatedAt: started)
        try await store.setProgress(progress)
        do {
            let (log, programmeLog) = try await viewing()
            guard Set(log.user).count >= 2 else { throw NotEnoughViewing(days: settings.days, boxes: Set(log.user).count) }
            progress.phase = .evaluating
            progress.updatedAt = Date()
            try await store.setProgress(progress)
            let evaluation = try OfflineEvaluation(parameters: settings.parameters, scaling: settings.scaling)
                .run(log, test: .holdout(.time, fraction: settings.holdoutFraction, seed: settings.parameters.seed))
            progress.phase = .training
            try await store.setProgress(progress)
            let histories = UserHistories(log)
            var parameters = settings.parameters
            parameters.computeLoss = true
            let fitStart = ContinuousClock.now
            // The fit runs off this task; the progress (iteration, loss, ETA) is written every second.
            let live = LiveProgress()
            let matrix = histories.confidenceMatrix(settings.scaling)
            let fit = Task.detached { [parameters, iterationGauge, lossGauge] in
                try ALSTrainer.fit(matrix, parameters: parameters) { p in
                    live.state.withLock { $0 = (p.iteration, p.loss) }
                    iterationGauge.record(p.iteration)
                    if let loss = p.loss { lossGauge.record(loss) }
                }
            }
            let reporter = Task { [store, progress] in
                var p = progress
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    let (iteration, loss) = live.state.withLock { $0 }
                    let elapsed = (ContinuousClock.now - fitStart).seconds
                    p.iteration = iteration
                    p.loss = loss
                    p.etaSeconds = iteration > 0 ? elapsed / Double(iteration) * Double(p.iterations - iteration) : nil
                    p.updatedAt = Date()
                    try? await store.setProgress(p)
                }
            }
            let fitted: ALSFactors
            do {
                fitted = try await fit.value
                reporter.cancel()
            } catch {
                reporter.cancel()
                throw error
            }
            let fitSeconds = (ContinuousClock.now - fitStart).seconds
            progress.iteration = parameters.iterations
            progress.loss = fitted.losses.last
            progress.phase = .saving
            progress.updatedAt = Date()
            try await store.setProgress(progress)
            try await save(version: version, log: log, histories: histories, fitted: fitted, evaluation: evaluation, fitSeconds: fitSeconds)
            // The box × programme model, where the guide covers the viewing (same parameters).
            _ = try await trainProgrammes(programmeLog, version: version)
            let current = try await store.currentVersion()
            var currentP10: Double?
            var currentImported = false
            if let current, let doc = try await store.version(current) {
                currentP10 = doc["evaluation"]?.documentValue?["alsP10"]?.doubleValue
                currentImported = doc["source"]?.stringValue == "import"
            }
            // An imported model (trained elsewhere) stays until an operator promotes another version.
            let promoted = !currentImported && (currentP10.map { evaluation.als.precision >= $0 - settings.promotionMargin } ?? true)
            if promoted {
                try await store.promote(version)
                versionGauge.record(version)
            }
            try await store.prune(keep: settings.keepVersions, current: promoted ? version : current)
            progress.phase = .done
            progress.updatedAt = Date()
            progress.etaSeconds = 0
            try await store.setProgress(progress)
            await clearDivergenceAlarm()
            logger.info(
                "recommendation model trained",
                metadata: [
                    LogKey.count: .stringConvertible(log.count), LogKey.recommendVersion: .stringConvertible(version),
                    LogKey.recommendPromoted: .stringConvertible(promoted),
                ])
            return version
        } catch {
            progress.phase = .failed
            progress.error = "\(error)"
            progress.updatedAt = Date()
            try? await store.setProgress(progress)
            if !(error is NotEnoughViewing) {
                _ = try? await store.saveVersion(["_id": .int(version), "createdAt": .date(started), "failed": .string("\(error)"), "promoted": false])
            }
            if let diverged = error as? ALSError, case .diverged = diverged { await raiseDivergenceAlarm(version: version, error: diverged) }
            throw error
        }
    }

    func save(
        version: Int, log: InteractionLog, histories: UserHistories, fitted: ALSFactors, evaluation: OfflineEvaluation.Report, fitSeconds: Double
    ) async throws {
        // Each box's items, most-watched first (CSR: offsets, items), and the popular items
        // overall and per model segment.
        let (offsets, watched) = histories.mostWatchedFirst()
        var itemMinutes = [Double](repeating: 0, count: histories.items)
        for (idx, item) in histories.item.enumerated() { itemMinutes[Int(item)] += histories.weight[idx] }
        var segmentMinutes: [String: [Double]] = [:]
        let users = log.users.names
        var modelOf: [String: String] = [:]
        for d in try await mongo.collection(Schema.devices).find([:], projection: ["model": 1]) {
            if let id = d["_id"]?.stringValue, let m = d["model"]?.stringValue { modelOf[id] = m }
        }
        for u in 0..<histories.users {
            guard let m = modelOf[users[u]] else { continue }
            for idx in histories.start[u]..<histories.start[u + 1] {
                segmentMinutes[m, default: [Double](repeating: 0, count: histories.items)][Int(histories.item[idx])] += histories.weight[idx]
            }
        }
        func popular(_ minutes: [Double]) -> BSON {
            .array(minutes.indices.filter { minutes[$0] > 0 }.sorted { minutes[$0] > minutes[$1] }.prefix(20).map { .string(log.items.names[$0]) })
        }
        let segments: [BSON] = segmentMinutes.sorted { $0.key < $1.key }.map { model, minutes in
            .document(["model": .string(model), "items": popular(minutes)])
        }
        let p = settings.parameters
        try await store.saveVersion([
            "_id": .int(version), "createdAt": .date(Date()), "kind": "channel", "promoted": false,
            "params": [
                "factors": .int(p.factors), "iterations": .int(p.iterations), "regularization": .double(Double(p.regularization)),
                "seed": .int64(Int64(p.seed)),
            ],
            "data": ["boxes": .int(histories.users), "items": .int(histories.items), "pairs": .int(histories.pairs), "days": .int(settings.days)],
            "evaluation": [
                "alsP10": .double(evaluation.als.precision), "alsMAP10": .double(evaluation.als.map), "alsNDCG10": .double(evaluation.als.ndcg),
                "popularityP10": .double(evaluation.popularity.precision), "popularityMAP10": .double(evaluation.popularity.map),
                "popularityNDCG10": .double(evaluation.popularity.ndcg), "testPairs": .int(evaluation.testPairs),
            ],
            "fitSeconds": .double(fitSeconds), "losses": .array(fitted.losses.map { .double($0) }),
            "items": .array(log.items.names.map { .string($0) }), "popular": popular(itemMinutes), "popularBySegment": .array(segments),
        ])
        try await store.putBlob(version: version, part: "users", Packing.bytes(users))
        try await store.putBlob(version: version, part: "userFactors", Packing.bytes(fitted.userFactors))
        try await store.putBlob(version: version, part: "itemFactors", Packing.bytes(fitted.itemFactors))
        try await store.putBlob(version: version, part: "historyOffsets", Packing.bytes(offsets))
        try await store.putBlob(version: version, part: "historyItems", Packing.bytes(watched))
    }
}

/// Fewer than two boxes viewed anything in the window: nothing to learn yet (a fresh hub).
struct NotEnoughViewing: Error, CustomStringConvertible {
    var days: Int
    var boxes: Int
    var description: String { "not enough viewing to train on: \(boxes) box(es) viewed anything in the last \(days) days; at least 2 are needed" }
}

/// The fit's latest iteration and loss, shared between the fit and its reporter.
final class LiveProgress: Sendable {
    let state = Mutex<(iteration: Int, loss: Double?)>((0, nil))
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
