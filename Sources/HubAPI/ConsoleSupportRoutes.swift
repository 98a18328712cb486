import ArgusStore
import ArgusSupport
import CommandRuntime
import Commands
import Foundation
import Hummingbird
import STBProtocol

/// Routes the operator console needs beside the others: a box's command history, and tags
/// added or removed in bulk. Both have their rows in ``AccessMatrix``.
package enum ConsoleSupportRoutes {
    /// Most tags one request adds or removes.
    static let maxTagChanges = 16

    package static func add(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies, _ commands: CommandService?) {
        if let commands {
            api.get("devices/{id}/executions") { request, context -> Response in
                let id = try Validate.identifier(try context.parameters.require("id"), field: "id")
                let limit = try Validate.int(request, "limit", default: 50, range: 1...500)
                let items = try await OperatorAPI.storeCall { try await commands.repository.deviceExecutions(id, limit: limit) }
                return CommandRoutes.json(.ok, .object([("items", .array(items.map { ExecutionView($0).json }))]))
            }
        }

        // {target: {devices: [...]} | {query: {...}} | {all: true}, add: [tags], remove: [tags]}
        api.post("devices:tags") { request, context -> Response in
            let who = try context.caller()
            var params: [String: String] = [:]
            do {
                let members = JSONValue.object(try await CommandRoutes.parseObject(request, context))
                guard case .object(let fields) = members else { throw Refusal("body must be an object") }
                for (k, _) in fields where !["target", "add", "remove"].contains(k) { throw Refusal("\(k): unknown field; known: target, add, remove") }
                func tags(_ name: String) throws -> [String] {
                    guard let v = members[name] else { return [] }
                    guard case .array(let items) = v, items.count <= maxTagChanges else {
                        throw Refusal("\(name) must be an array of at most \(maxTagChanges) tags")
                    }
                    return try items.map { item in
                        guard case .string(let s) = item else { throw Refusal("\(name)[] must be strings") }
                        do { return try Validate.identifier(s, field: "\(name)[]", max: 32) } catch let e as HTTPError {
                            throw Refusal(e.body ?? "\(name)[]: invalid tag")
                        }
                    }
                }
                let add = try tags("add"), remove = try tags("remove")
                guard !add.isEmpty || !remove.isEmpty else { throw Refusal("add or remove: give at least one tag") }
                guard Set(add).isDisjoint(with: remove) else { throw Refusal("remove: a tag cannot be both added and removed") }
                guard let targetValue = members["target"] else { throw Refusal("target is required: one of devices, query, all") }
                let target: JobTarget
                do { target = try JobTarget.parse(targetValue, maxDevices: 100_000) } catch let e as JobPlanError { throw Refusal(e) }
                params = ["add": add.joined(separator: ","), "remove": remove.joined(separator: ",")]
                let ids = target.ids
                params["target"] = ids.map { "\($0.count) devices" } ?? "filter"
                let matched = try await OperatorAPI.storeCall {
                    try await deps.devices.retag(ids: ids, filter: DeviceFilter(target.storeQuery ?? TargetQuery()), add: add, remove: remove)
                }
                params["matched"] = String(matched)
                await deps.audit.record(who, in: context, action: "device.tags", target: nil, parameters: params, result: "ok")
                return CommandRoutes.json(.ok, .object([("matched", .int(Int64(matched)))]))
            } catch let r as Refusal {
                await deps.audit.record(who, in: context, action: "device.tags", target: nil, parameters: params, result: "rejected: \(r.message)")
                throw r.http
            }
        }
    }
}
