import ArgusStore
import ArgusSupport
import Foundation
import Logging
import MongoStore
import Recommend
import Telemetry

extension RecommendTrainer {
    /// The alarm of a diverged training (docs/recommendations.md, "Failures"): one per model
    /// kind, active until a training of that kind succeeds.
    static let divergenceRule = "recommend_training_diverged"
    static let divergenceKey = "\(divergenceRule)|channel"

    /// Raises the divergence alarm through the hub's alarms (`GET /api/v1/alarms`), unless it is
    /// already active. A store failure here is logged: the training has failed anyway and says why.
    func raiseDivergenceAlarm(version: Int, error: ALSError) async {
        do {
            let alarms = mongo.collection(Schema.alarms)
            if try await alarms.findOne(["key": .string(Self.divergenceKey), "active": true], projection: ["_id": 1]) != nil { return }
            let current = try await store.currentVersion()
            try await MongoTelemetryStore(store: mongo).applyAlarms(
                [
                    .raise(
                        key: Self.divergenceKey, rule: Self.divergenceRule, target: "channel",
                        details: ["version": "\(version)", "error": error.description, "serving": current.map { "\($0)" } ?? "none"])
                ], now: Int64(Date().timeIntervalSince1970 * 1000))
            logger.error(
                "recommendation training diverged; alarm raised, previous model kept",
                metadata: [LogKey.recommendVersion: .stringConvertible(version), LogKey.error: .string(error.description)])
        } catch {
            logger.error("recommendation divergence alarm not stored", metadata: [LogKey.error: .string("\(error)")])
        }
    }

    /// Clears the divergence alarm after a training that did not diverge.
    func clearDivergenceAlarm() async {
        do {
            try await MongoTelemetryStore(store: mongo).applyAlarms([.clear(key: Self.divergenceKey)], now: Int64(Date().timeIntervalSince1970 * 1000))
        } catch {
            logger.warning("recommendation divergence alarm not cleared", metadata: [LogKey.error: .string("\(error)")])
        }
    }
}
