import ArgusStore
import ArgusSupport
import CommandRuntime
import Foundation
import HubGateway
import Hummingbird

package struct AlarmList: ResponseEncodable { var items: [AlarmRecord] }
extension AlarmRecord: ResponseEncodable {}

extension OperatorAPI {
    package static func addAlarmRoutes(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies) {
        let repo = AlarmRepository(store: deps.store)

        api.get("alarms") { request, context -> AlarmList in
            _ = try context.require(.analyst)
            let q = request.uri.queryParameters
            let state = q.get("state").map { String($0) }
            if let state, !["raised", "acknowledged", "cleared"].contains(state) {
                throw HTTPError(.badRequest, message: "state must be raised, acknowledged or cleared")
            }
            let limit = try Validate.int(request, "limit", default: 100, range: 1...1000)
            return AlarmList(items: try await storeCall { try await repo.list(state: state, rule: q.get("rule").map { String($0) }, limit: limit) })
        }

        api.post("alarms/{id}/ack") { _, context -> AlarmRecord in
            let who = try context.require(.operator)
            let id = try context.parameters.require("id")
            let outcome = try await storeCall { try await repo.acknowledge(id: id, by: who.name, now: Date()) }
            switch outcome {
            case .acknowledged(let r):
                await deps.audit.record(who, in: context, action: "alarm.acknowledge", target: id, parameters: ["key": r.key], result: "ok")
                deps.live?.publishFleet(#"{"type":"alarm","state":"acknowledged","id":"\#(r.id)","key":"\#(r.key)"}"#)
                return r
            case .alreadyAcknowledged(let r):
                await deps.audit.record(who, in: context, action: "alarm.acknowledge", target: id, result: "already_acknowledged")
                return r
            case .alreadyCleared:
                await deps.audit.record(who, in: context, action: "alarm.acknowledge", target: id, result: "cleared")
                throw HTTPError(.conflict, message: "alarm \(id) is already cleared")
            case .notFound:
                throw HTTPError(.notFound, message: "no alarm \(id)")
            }
        }
    }
}
