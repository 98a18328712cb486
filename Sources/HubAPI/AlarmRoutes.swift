import ArgusStore
import ArgusSupport
import CommandRuntime
import Foundation
import HubGateway
import Hummingbird

package struct AlarmList: ResponseEncodable { var items: [AlarmView] }

extension OperatorAPI {
    package static func addAlarmRoutes(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies) {
        let repo = AlarmRepository(store: deps.store)

        api.get("alarms") { request, context -> AlarmList in
            let q = request.uri.queryParameters
            var state: AlarmStatus? = nil
            if let s = q.get("state") {
                guard let st = AlarmStatus(rawValue: String(s)) else {
                    throw HTTPError(.badRequest, message: "state must be raised, acknowledged or cleared")
                }
                state = st
            }
            let limit = try Validate.int(request, "limit", default: 100, range: 1...1000)
            let items = try await storeCall { try await repo.list(state: state, rule: q.get("rule").map { String($0) }, limit: limit) }
            return AlarmList(items: items.map(AlarmView.init))
        }

        api.post("alarms/{id}/ack") { _, context -> AlarmView in
            let who = try context.caller()
            let id = try context.parameters.require("id")
            let outcome = try await storeCall { try await repo.acknowledge(id: id, by: who.name, now: Date()) }
            switch outcome {
            case .acknowledged(let r):
                await deps.audit.record(who, in: context, action: "alarm.acknowledge", target: id, parameters: ["key": r.key], result: "ok")
                deps.live?.publishFleet(#"{"type":"alarm","state":"acknowledged","id":"\#(r.id)","key":"\#(r.key)"}"#)
                return AlarmView(r)
            case .alreadyAcknowledged(let r):
                await deps.audit.record(who, in: context, action: "alarm.acknowledge", target: id, result: "already_acknowledged")
                return AlarmView(r)
            case .alreadyCleared:
                await deps.audit.record(who, in: context, action: "alarm.acknowledge", target: id, result: "cleared")
                throw HTTPError(.conflict, message: "alarm \(id) is already cleared")
            case .notFound:
                throw HTTPError(.notFound, message: "no alarm \(id)")
            }
        }
    }
}
