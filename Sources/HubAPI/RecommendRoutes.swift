import ArgusStore
import Foundation
import Hummingbird
import MongoStore
import RecommendRuntime

extension Recommendations: ResponseEncodable {}

package struct RecommendStatus: ResponseEncodable {
    package struct Progress: Encodable {
        var phase: String
        var version: Int
        var iteration: Int
        var iterations: Int
        var loss: Double?
        var etaSeconds: Double?
        var error: String?
        var startedAt: String
        var updatedAt: String
    }

    package struct Version: Encodable {
        var version: Int
        var createdAt: String?
        var promoted: Bool
        /// `import` for factors trained elsewhere; absent for the hub's own trainings.
        var source: String?
        var failed: String?
        var boxes: Int?
        var items: Int?
        var pairs: Int?
        var alsP10: Double?
        var alsMAP10: Double?
        var alsNDCG10: Double?
        var popularityP10: Double?
        var popularityMAP10: Double?
        var popularityNDCG10: Double?
        var fitSeconds: Double?
    }

    var current: Int?
    var progress: Progress?
    var versions: [Version]
}

/// Recommendations (docs/recommendations.md, "On the hub"): a box's channels with reasons
/// (operators: it is derived from one box's viewing, so every read is audited), the trainer's
/// progress and versions (aggregates, analysts too), and training on request.
package enum RecommendRoutes {
    package static func add(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies, _ service: RecommendService) {
        let devices = DeviceRepository(store: deps.store)

        api.get("devices/{id}/recommendations") { request, context -> Recommendations in
            let who = try context.caller()
            let id = try context.parameters.require("id")
            let n = try Validate.int(request, "n", default: 10, range: 1...100)
            guard let device = try await OperatorAPI.storeCall({ try await devices.get(id) }) else {
                throw HTTPError(.notFound, message: "no device \(id)")
            }
            let answer = try await OperatorAPI.storeCall { try await service.recommendations(device: id, segment: device.model, n: n) }
            await deps.audit.record(
                who, in: context, action: "device.recommendations.read", target: id,
                parameters: ["n": "\(n)", "coldStart": "\(answer.coldStart)"], result: "ok")
            return answer
        }

        api.get("recommendations/status") { _, context -> RecommendStatus in
            _ = try context.caller()
            let store = service.store
            let (current, progress, versions) = try await OperatorAPI.storeCall {
                (try await store.currentVersion(), try await store.progress(), try await store.versions())
            }
            func iso(_ d: Date?) -> String? { d.map { ISO8601DateFormatter().string(from: $0) } }
            return RecommendStatus(
                current: current,
                progress: progress.map {
                    .init(
                        phase: $0.phase.rawValue, version: $0.version, iteration: $0.iteration, iterations: $0.iterations, loss: $0.loss,
                        etaSeconds: $0.etaSeconds, error: $0.error, startedAt: iso($0.startedAt) ?? "", updatedAt: iso($0.updatedAt) ?? "")
                },
                versions: versions.compactMap { d in
                    guard let v = d["_id"]?.intValue else { return nil }
                    let e = d["evaluation"]?.documentValue, data = d["data"]?.documentValue
                    return .init(
                        version: v, createdAt: iso(d["createdAt"]?.dateValue), promoted: d["promoted"]?.boolValue ?? false, source: d["source"]?.stringValue,
                        failed: d["failed"]?.stringValue, boxes: data?["boxes"]?.intValue, items: data?["items"]?.intValue, pairs: data?["pairs"]?.intValue,
                        alsP10: e?["alsP10"]?.doubleValue, alsMAP10: e?["alsMAP10"]?.doubleValue, alsNDCG10: e?["alsNDCG10"]?.doubleValue,
                        popularityP10: e?["popularityP10"]?.doubleValue, popularityMAP10: e?["popularityMAP10"]?.doubleValue,
                        popularityNDCG10: e?["popularityNDCG10"]?.doubleValue, fitSeconds: d["fitSeconds"]?.doubleValue)
                })
        }

        api.post("recommendations/train") { _, context -> Response in
            let who = try context.caller()
            let queued = try await OperatorAPI.storeCall { try await service.store.requestTraining(by: who.name, now: Date()) }
            await deps.audit.record(who, in: context, action: "recommendations.train", target: "channel", result: queued ? "requested" : "already_requested")
            return Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"requested\":true}")))
        }
    }
}
