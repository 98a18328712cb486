import ArgusStore
import ArgusSupport
import CommandRuntime
import Commands
import Foundation
import HubGateway
import Hummingbird
import MongoStore
import STBProtocol

/// A refused operator request: its status and message go to the caller and the audit log.
package struct Refusal: Error {
    package var status: HTTPResponse.Status
    package var message: String
    package init(_ message: String, _ status: HTTPResponse.Status = .badRequest) { self.message = message; self.status = status }
    package var http: HTTPError { HTTPError(status, message: message) }

    /// A job the planner refused: every kind is a bad request.
    package init(_ e: JobPlanError) {
        switch e.kind {
        case .invalid, .firmware, .unknownDevice, .noDevices, .tooManyDevices, .wrongModel: self.init(e.message, .badRequest)
        }
    }
}

/// `/api/v1/commands`: jobs, their executions and results. See docs/commands.md.
package enum CommandRoutes {
    package static func add(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies, _ commands: CommandService, _ firmware: FirmwareRepository) {
        api.post("commands") { request, context -> Response in
            let who = try context.caller()
            var auditParams: [String: String] = [:]
            do {
                let body = try await parseObject(request, context)
                try checkKind(body, who, &auditParams)
                let job = try await buildJob(body, who: who, deps: deps, commands: commands, firmware: firmware, audit: &auditParams)
                let created: Job
                do { created = try await commands.create(job) } catch { throw OperatorAPI.storeUnavailable(error, context) }
                auditParams["count"] = String(created.devices.count)
                await deps.audit.record(who, in: context, action: "command.create", target: job.id, parameters: auditParams, result: "ok")
                return json(.created, JobView(created.record).json)
            } catch let r as Refusal {
                await deps.audit.record(who, in: context, action: "command.create", target: nil, parameters: auditParams, result: "rejected: \(r.message)")
                throw r.http
            }
        }

        api.get("commands") { request, context -> Response in
            let limit = try Validate.int(request, "limit", default: 50, range: 1...500)
            let before = request.uri.queryParameters.get("before").map { String($0) }
            // A job that does not decode is left out (counted and logged), not the whole page.
            let page = try await OperatorAPI.storeCall { try await commands.repository.jobRecords(before: before, limit: limit) }
            var body: [(String, JSONValue)] = [("items", .array(page.items.map { JobView($0).json }))]
            if let last = page.last { body.append(("nextBefore", .string(last))) }
            return json(.ok, .object(body))
        }

        api.get("commands/{id}") { request, context -> Response in
            let id = try context.parameters.require("id")
            let withDevices = try Validate.bool(request, "devices") ?? false
            guard let record = try await OperatorAPI.storeCall({ try await commands.repository.jobRecord(id, withDevices: withDevices) }) else {
                throw HTTPError(.notFound, message: "no command job \(id)")
            }
            let counts = try await OperatorAPI.storeCall { try await commands.repository.counts(job: id) }
            return json(.ok, JobView(record, counts: counts, includeDevices: withDevices).json)
        }

        api.get("commands/{id}/executions") { request, context -> Response in
            let id = try context.parameters.require("id")
            let limit = try Validate.int(request, "limit", default: 100, range: 1...1000)
            var state: String? = nil
            if let s = request.uri.queryParameters.get("state") {
                guard ExecutionState(rawValue: String(s)) != nil else {
                    throw HTTPError(.badRequest, message: "state must be one of \(ExecutionState.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                state = String(s)
            }
            let cursor = request.uri.queryParameters.get("cursor").map { String($0) }
            // An execution that does not decode is left out (counted and logged), not the whole page.
            let page = try await OperatorAPI.storeCall {
                try await commands.repository.executionRecords(job: id, state: state, after: cursor, limit: limit)
            }
            var body: [(String, JSONValue)] = [("items", .array(page.items.map { ExecutionView($0).json }))]
            if let last = page.last { body.append(("nextCursor", .string(last))) }
            return json(.ok, .object(body))
        }

        api.get("commands/{id}/executions/{device}") { _, context -> Response in
            let id = try context.parameters.require("id"), device = try context.parameters.require("device")
            guard let r = try await OperatorAPI.storeCall({ try await commands.repository.executionRecord(job: id, device: device) }) else {
                throw HTTPError(.notFound, message: "no execution of \(id) on \(device)")
            }
            return json(.ok, ExecutionView(r).json)
        }

        // Debug results (log pulls, diagnostics) are downloads; reading one is audited.
        api.get("commands/{id}/executions/{device}/result") { _, context -> Response in
            let who = try context.caller()
            let id = try context.parameters.require("id"), device = try context.parameters.require("device")
            guard let d = try await OperatorAPI.storeCall({ try await commands.repository.executionRecord(job: id, device: device) }) else {
                throw HTTPError(.notFound, message: "no execution of \(id) on \(device)")
            }
            guard let result = d.result else {
                throw HTTPError(.notFound, message: "execution \(id) on \(device) has no result (state \(d.state.rawValue))")
            }
            await deps.audit.record(who, in: context, action: "command.result.download", target: "\(id)|\(device)", result: "ok")
            let name = d.name ?? "result"
            if name == CommandName.logPull.rawValue, let lines = result.documentValue?["lines"]?.arrayValue {
                let text = lines.compactMap(\.stringValue).joined(separator: "\n") + "\n"
                return Response(
                    status: .ok,
                    headers: [
                        .contentType: "text/plain; charset=utf-8",
                        .contentDisposition: "attachment; filename=\"\(device)-\(id).log\"",
                    ],
                    body: .init(byteBuffer: ByteBuffer(string: text)))
            }
            var r = json(.ok, result.json)
            r.headers[.contentDisposition] = "attachment; filename=\"\(device)-\(id)-\(name).json\""
            return r
        }

        api.post("commands/{id}/cancel") { _, context -> Response in
            let who = try context.caller()
            let id = try context.parameters.require("id")
            // Cancelling needs the role that may send the job's kind.
            if let job = try await OperatorAPI.storeCall({ try await commands.repository.jobRecord(id, withDevices: false) }),
                let name = CommandName(rawValue: job.name), let rule = AccessMatrix.command(name), !rule.allows(who.role)
            {
                let message = AccessMatrix.refusal("cancelling a \(name.rawValue) job", roles: rule.orderedRoles, has: who.role)
                await deps.audit.record(who, in: context, action: "command.cancel", target: id, result: "refused 403: \(message)")
                throw HTTPError(.forbidden, message: message)
            }
            let r = try await OperatorAPI.storeCall { try await commands.cancel(job: id, by: who.name) }
            guard r.exists else {
                await deps.audit.record(who, in: context, action: "command.cancel", target: id, result: "not_found")
                throw HTTPError(.notFound, message: "no command job \(id)")
            }
            await deps.audit.record(
                who, in: context, action: "command.cancel", target: id, parameters: ["executions": String(r.executions)],
                result: r.changed ? "ok" : "already_canceled")
            return json(
                .ok,
                .object([
                    ("id", .string(id)), ("state", .string(JobState.canceled.rawValue)), ("alreadyCanceled", .bool(!r.changed)),
                    ("executionsCanceled", .int(Int64(r.executions))),
                ]))
        }
    }

    // MARK: - Building a job

    /// 403 unless the caller's role may send the command the body names (``AccessMatrix/commandRules``);
    /// an unknown or missing name is left to the planner's 400.
    package static func checkKind(_ body: [(String, JSONValue)], _ who: Principal, _ audit: inout [String: String]) throws {
        guard case .string(let n)? = body.first(where: { $0.0 == "name" })?.1, let name = CommandName(rawValue: n), let rule = AccessMatrix.command(name) else {
            return
        }
        guard rule.allows(who.role) else {
            audit["name"] = name.rawValue
            throw Refusal(AccessMatrix.refusal("the command \(name.rawValue)", roles: rule.orderedRoles, has: who.role), .forbidden)
        }
    }

    package static func parseObject(_ request: Request, _ context: HubRequestContext) async throws -> [(String, JSONValue)] {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: context.maxUploadSize) } catch {
            throw Refusal("request body larger than \(context.maxUploadSize) bytes", .contentTooLarge)
        }
        let value: JSONValue
        do { value = try JSONParser.parse(buffer.readableBytesView) } catch { throw Refusal("body is not valid JSON: \(error.description)") }
        guard case .object(let members) = value else { throw Refusal("body must be a JSON object") }
        return members
    }

    /// Plans the job (``JobPlanner``) from the body and what the store knows; nothing is
    /// stored here. The planner's refusals become 400s with its message.
    package static func buildJob(
        _ body: [(String, JSONValue)], who: Principal, deps: APIDependencies, commands: CommandService,
        firmware: FirmwareRepository, audit: inout [String: String]
    ) async throws -> Job {
        do {
            let request = try JobRequest(body: body)
            audit["name"] = request.name
            if let target = request.target {
                audit["target"] = String(
                    decoding: {
                        var w = JSONWriter(); w.raw(target); return w.bytes
                    }().prefix(200), as: UTF8.self)
            }
            // A firmware update may name a catalogue version only; the planner fills in the rest.
            var image: FirmwareImage? = nil
            if let v = request.catalogueVersion { image = try await OperatorAPI.storeCall({ try await firmware.get(v) })?.image }
            let planner = JobPlanner(maxTargets: commands.configuration.maxTargets, defaultTTLMillis: commands.configuration.defaultTTLMillis)
            let plan = try planner.plan(request, firmware: image, now: commands.now())
            switch plan.scope {
            case .fleet(let query):
                // The store is asked only whether any box matches (not even that when a box
                // connected here matches: it is registered and not revoked); each node
                // matches its own sessions.
                let filter = DeviceFilter(query)
                let matches =
                    if deps.registry.anySession(matching: filter) { true } else {
                        try await !OperatorAPI.storeCall({ try await deps.devices.resolve(filter, limit: 1) }).isEmpty
                    }
                try planner.confirmFleet(plan, anyMatch: matches)
                return Job(plan, devices: [], createdBy: who.name, node: deps.node)
            case .list:
                let found = try await lookup(
                    plan.target, devices: deps.devices, limit: planner.maxTargets,
                    connected: plan.firmware == nil ? deps.registry : nil)
                return Job(plan, devices: try planner.devices(plan, found: found), createdBy: who.name, node: deps.node)
            }
        } catch let e as JobPlanError {
            throw Refusal(e)
        }
    }

    /// What the store holds of a target's boxes: the named ones it has, or up to `limit` + 1
    /// that a tag, query or all matches (revoked boxes left out).
    ///
    /// `connected`: boxes named in the target that hold a session here exist and are not
    /// revoked (revoking closes the session), so they need no store lookup; pass nil when the
    /// caller needs their models.
    package static func lookup(
        _ target: JobTarget, devices: DeviceRepository, limit: Int,
        connected: ConnectionRegistry? = nil
    ) async throws -> [TargetBox] {
        if let ids = target.ids {
            if let connected, ids.count <= 100, connected.sessions(for: ids).count == ids.count {
                return ids.map { TargetBox(id: $0, model: "") }
            }
            return try await OperatorAPI.storeCall { try await devices.lookup(ids) }.map { TargetBox(id: $0.id, model: $0.model, revoked: $0.revoked) }
        }
        let filter = DeviceFilter(target.storeQuery ?? TargetQuery())
        return try await OperatorAPI.storeCall { try await devices.resolve(filter, limit: limit + 1) }.map { TargetBox(id: $0.id, model: $0.model) }
    }

    // MARK: - Responses

    package static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        var w = JSONWriter(capacity: 256)
        w.raw(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }
}
