import Commands
import Foundation
import Hummingbird
import MongoStore
import STBProtocol

/// A refused operator request: its status and message go to the caller and the audit log.
struct Refusal: Error {
    var status: HTTPResponse.Status
    var message: String
    init(_ message: String, _ status: HTTPResponse.Status = .badRequest) { self.message = message; self.status = status }
    var http: HTTPError { HTTPError(status, message: message) }
}

/// `/api/v1/commands`: jobs, their executions and results. See docs/commands.md.
enum CommandRoutes {
    static func add(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies, _ commands: CommandService, _ firmware: FirmwareRepository) {
        api.post("commands") { request, context -> Response in
            let who = try context.require(.operator)
            var auditParams: [String: String] = [:]
            do {
                let body = try await parseObject(request, context)
                let job = try await buildJob(body, who: who, deps: deps, commands: commands, firmware: firmware, audit: &auditParams)
                let created: Job
                do { created = try await commands.create(job) } catch { throw OperatorAPI.storeUnavailable(error, context) }
                auditParams["count"] = String(created.devices.count)
                await deps.audit.record(who, in: context, action: "command.create", target: job.id, parameters: auditParams, result: "ok")
                return json(.created, jobView(created.document, counts: nil, includeDevices: false))
            } catch let r as Refusal {
                await deps.audit.record(who, in: context, action: "command.create", target: nil, parameters: auditParams, result: "rejected: \(r.message)")
                throw r.http
            }
        }

        api.get("commands") { request, context -> Response in
            _ = try context.require(.analyst)
            let limit = try Validate.int(request, "limit", default: 50, range: 1...500)
            let before = request.uri.queryParameters.get("before").map { String($0) }
            let docs = try await OperatorAPI.storeCall { try await commands.repository.listJobs(before: before, limit: limit) }
            var page: [(String, JSONValue)] = [("items", .array(docs.map { jobView($0, counts: nil, includeDevices: false) }))]
            if docs.count == limit, let last = docs.last?["_id"]?.stringValue { page.append(("nextBefore", .string(last))) }
            return json(.ok, .object(page))
        }

        api.get("commands/{id}") { request, context -> Response in
            _ = try context.require(.analyst)
            let id = try context.parameters.require("id")
            let withDevices = try Validate.bool(request, "devices") ?? false
            guard let doc = try await OperatorAPI.storeCall({ try await commands.repository.job(id, withDevices: withDevices) }) else {
                throw HTTPError(.notFound, message: "no command job \(id)")
            }
            let counts = try await OperatorAPI.storeCall { try await commands.repository.counts(job: id) }
            return json(.ok, jobView(doc, counts: counts, includeDevices: withDevices))
        }

        api.get("commands/{id}/executions") { request, context -> Response in
            _ = try context.require(.analyst)
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
            let docs = try await OperatorAPI.storeCall {
                try await commands.repository.executionsPage(job: id, state: state, after: cursor, limit: limit)
            }
            var page: [(String, JSONValue)] = [("items", .array(docs.map(executionView)))]
            if docs.count == limit, let last = docs.last?["device"]?.stringValue { page.append(("nextCursor", .string(last))) }
            return json(.ok, .object(page))
        }

        api.get("commands/{id}/executions/{device}") { _, context -> Response in
            _ = try context.require(.analyst)
            let id = try context.parameters.require("id"), device = try context.parameters.require("device")
            guard let d = try await OperatorAPI.storeCall({ try await commands.repository.execution(job: id, device: device) }) else {
                throw HTTPError(.notFound, message: "no execution of \(id) on \(device)")
            }
            return json(.ok, executionView(d))
        }

        // Debug results (log pulls, diagnostics) are downloads; reading one is audited.
        api.get("commands/{id}/executions/{device}/result") { _, context -> Response in
            let who = try context.require(.operator)
            let id = try context.parameters.require("id"), device = try context.parameters.require("device")
            guard let d = try await OperatorAPI.storeCall({ try await commands.repository.execution(job: id, device: device) }) else {
                throw HTTPError(.notFound, message: "no execution of \(id) on \(device)")
            }
            guard let result = d["result"] else {
                throw HTTPError(.notFound, message: "execution \(id) on \(device) has no result (state \(d["state"]?.stringValue ?? "?"))")
            }
            await deps.audit.record(who, in: context, action: "command.result.download", target: "\(id)|\(device)", result: "ok")
            let name = d["name"]?.stringValue ?? "result"
            if name == CommandName.logPull.rawValue, let lines = result.documentValue?["lines"]?.arrayValue {
                let text = lines.compactMap(\.stringValue).joined(separator: "\n") + "\n"
                return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8",
                                                      .contentDisposition: "attachment; filename=\"\(device)-\(id).log\""],
                                body: .init(byteBuffer: ByteBuffer(string: text)))
            }
            var r = json(.ok, result.json)
            r.headers[.contentDisposition] = "attachment; filename=\"\(device)-\(id)-\(name).json\""
            return r
        }

        api.post("commands/{id}/cancel") { _, context -> Response in
            let who = try context.require(.operator)
            let id = try context.parameters.require("id")
            let r = try await OperatorAPI.storeCall { try await commands.cancel(job: id, by: who.name) }
            guard r.exists else {
                await deps.audit.record(who, in: context, action: "command.cancel", target: id, result: "not_found")
                throw HTTPError(.notFound, message: "no command job \(id)")
            }
            await deps.audit.record(who, in: context, action: "command.cancel", target: id, parameters: ["executions": String(r.executions)],
                                    result: r.changed ? "ok" : "already_canceled")
            return json(.ok, .object([("id", .string(id)), ("state", .string("canceled")), ("alreadyCanceled", .bool(!r.changed)),
                                      ("executionsCanceled", .int(Int64(r.executions)))]))
        }
    }

    // MARK: - Building a job

    static func parseObject(_ request: Request, _ context: HubRequestContext) async throws -> [(String, JSONValue)] {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: context.maxUploadSize) } catch {
            throw Refusal("request body larger than \(context.maxUploadSize) bytes", .contentTooLarge)
        }
        let value: JSONValue
        do { value = try JSONParser.parse(buffer.readableBytesView) } catch { throw Refusal("body is not valid JSON: \(error.description)") }
        guard case .object(let members) = value else { throw Refusal("body must be a JSON object") }
        return members
    }

    /// Validates the request and resolves its target; nothing is stored here.
    static func buildJob(_ body: [(String, JSONValue)], who: Principal, deps: APIDependencies, commands: CommandService,
                         firmware: FirmwareRepository, audit: inout [String: String]) async throws -> Job {
        let allowed = ["name", "params", "target", "deadline", "expiresInSec"]
        if let unknown = body.first(where: { !allowed.contains($0.0) }) {
            throw Refusal("unknown field \(unknown.0); allowed: \(allowed.joined(separator: ", "))")
        }
        let obj = JSONValue.object(body)
        guard case .string(let name)? = obj["name"] else { throw Refusal("name is required (a command name)") }
        audit["name"] = name
        var params = obj["params"]
        // A firmware update may name a catalogue version only; the hub fills in the rest.
        var catalogueEntry: FirmwareRecord? = nil
        if name == CommandName.firmwareUpdate.rawValue, case .object(let m)? = params, m.count == 1, m[0].0 == "version", case .string(let v) = m[0].1 {
            guard let fw = try await OperatorAPI.storeCall({ try await firmware.get(v) }) else {
                throw Refusal("firmware \(v) is not in the catalogue; give version, url, size and sha256, or add it to /api/v1/firmware")
            }
            if let why = fw.unservableReason { throw Refusal(why) }
            guard let url = fw.url else { throw Refusal("firmware \(v) has no image yet (upload it first)") }
            params = .object([("version", .string(v)), ("url", .string(url)), ("size", .int(Int64(fw.size))), ("sha256", .string(fw.sha256))])
            catalogueEntry = fw
        }
        let command: Command
        do { command = try Command.validate(name: name, params: params) } catch {
            throw Refusal(error.field.map { "\($0): \(error.message)" } ?? error.message)
        }
        let now = CommandService.nowMillis()
        var deadline = now + commands.configuration.defaultTTLMillis
        switch (obj["deadline"], obj["expiresInSec"]) {
        case (.some, .some): throw Refusal("give deadline or expiresInSec, not both")
        case (.some(let d), nil):
            switch d {
            case .int(let ms): deadline = ms
            case .string(let s):
                guard let date = Validate.isoTime(s) else { throw Refusal("deadline must be an ISO 8601 time or ms since the epoch") }
                deadline = date.millis
            default: throw Refusal("deadline must be an ISO 8601 time or ms since the epoch")
            }
            guard deadline > now else { throw Refusal("deadline has already passed") }
            guard deadline <= now + 30 * 86_400_000 else { throw Refusal("deadline must be within 30 days") }
        case (nil, .some(let e)):
            guard case .int(let sec) = e, (1...2_592_000).contains(sec) else { throw Refusal("expiresInSec must be an integer from 1 to 2592000") }
            deadline = now + sec * 1000
        case (nil, nil): break
        }
        guard let target = obj["target"] else { throw Refusal("target is required: one of device, devices, tag, query, all") }
        audit["target"] = String(decoding: { var w = JSONWriter(); w.raw(target); return w.bytes }().prefix(200), as: UTF8.self)
        let limit = commands.configuration.maxTargets
        // Fleet targets (every box, or a query the sessions can answer) become fleet jobs: the
        // store is asked only whether any box matches (not even that when a box connected here
        // matches: it is registered and not revoked), and each node matches its own sessions.
        if catalogueEntry?.models.isEmpty ?? true, let filter = try fleetFilter(target) {
            let matches = if deps.registry.anySession(matching: filter) { true } else {
                try await !OperatorAPI.storeCall({ try await deps.devices.resolve(filter, limit: 1) }).isEmpty
            }
            guard matches else {
                throw Refusal("the target matches no devices")
            }
            return Job(id: Job.newID(now: now), name: command.name.rawValue, params: command.params, target: target,
                       devices: [], filter: filter, createdAt: now, deadline: deadline, createdBy: who.name, node: deps.node)
        }
        let boxes = try await resolve(target, devices: deps.devices, limit: limit,
                                      connected: catalogueEntry == nil ? deps.registry : nil)
        guard !boxes.isEmpty else { throw Refusal("the target matches no devices") }
        guard boxes.count <= limit else { throw Refusal("the target matches more than \(limit) devices; split it") }
        if let fw = catalogueEntry, !fw.models.isEmpty {
            let bad = boxes.filter { !fw.models.contains($0.model) }
            if !bad.isEmpty {
                throw Refusal("firmware \(fw.version) is for models \(fw.models.joined(separator: ", ")); \(bad.count) target devices are not (e.g. \(bad[0].id), model \(bad[0].model))")
            }
        }
        return Job(id: Job.newID(now: now), name: command.name.rawValue, params: command.params, target: target,
                   devices: boxes.map(\.id), createdAt: now, deadline: deadline, createdBy: who.name, node: deps.node)
    }

    /// `connected`: boxes named in the target that hold a session here exist and are not
    /// revoked (revoking closes the session), so they need no store lookup; pass nil when the
    /// caller needs their models.
    static func resolve(_ target: JSONValue, devices: DeviceRepository, limit: Int,
                        connected: ConnectionRegistry? = nil) async throws -> [(id: String, model: String)] {
        guard case .object(let m) = target, m.count == 1 else {
            throw Refusal("target must be an object with exactly one of device, devices, tag, query, all")
        }
        let (kind, value) = m[0]
        switch kind {
        case "device", "devices":
            var ids: [String]
            if kind == "device" {
                guard case .string(let id) = value, !id.isEmpty else { throw Refusal("target.device must be a device id") }
                ids = [id]
            } else {
                guard case .array(let items) = value else { throw Refusal("target.devices must be an array of device ids") }
                ids = try items.map { v in
                    guard case .string(let s) = v, !s.isEmpty else { throw Refusal("target.devices must hold device ids (strings)") }
                    return s
                }
                guard !ids.isEmpty else { throw Refusal("target.devices is empty") }
                guard ids.count <= limit else { throw Refusal("target.devices holds more than \(limit) devices; split it") }
                var seen = Set<String>()
                ids = ids.filter { seen.insert($0).inserted }
            }
            if let connected, ids.count <= 100, connected.sessions(for: ids).count == ids.count { return ids.map { ($0, "") } }
            let found = try await OperatorAPI.storeCall { try await devices.lookup(ids) }
            let byID = Dictionary(found.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            let unknown = ids.filter { byID[$0] == nil }
            if !unknown.isEmpty {
                throw Refusal("unknown device\(unknown.count > 1 ? "s" : ""): \(unknown.prefix(10).joined(separator: ", "))\(unknown.count > 10 ? " and \(unknown.count - 10) more" : "")")
            }
            if let r = ids.first(where: { byID[$0]!.revoked }) { throw Refusal("device \(r) is revoked") }
            return ids.map { ($0, byID[$0]!.model) }
        case "tag":
            guard case .string(let t) = value, !t.isEmpty else { throw Refusal("target.tag must be a tag") }
            return try await OperatorAPI.storeCall { try await devices.resolve(DeviceFilter(tag: t), limit: limit + 1) }
        case "query":
            let f = try query(value)
            return try await OperatorAPI.storeCall { try await devices.resolve(f, limit: limit + 1) }
        case "all":
            guard case .bool(true) = value else { throw Refusal("target.all must be true") }
            return try await OperatorAPI.storeCall { try await devices.resolve(DeviceFilter(), limit: limit + 1) }
        default:
            throw Refusal("unknown target \(kind); use one of device, devices, tag, query, all")
        }
    }

    static func query(_ value: JSONValue) throws -> DeviceFilter {
        guard case .object(let q) = value, !q.isEmpty else {
            throw Refusal("target.query must be an object with model, firmware, online and/or tag (use {\"all\": true} for every device)")
        }
        var f = DeviceFilter()
        for (k, v) in q {
            switch (k, v) {
            case ("model", .string(let s)): f.model = s
            case ("firmware", .string(let s)): f.firmware = s
            case ("tag", .string(let s)): f.tag = s
            case ("online", .bool(let b)): f.online = b
            case ("model", _), ("firmware", _), ("tag", _): throw Refusal("target.query.\(k) must be a string")
            case ("online", _): throw Refusal("target.query.online must be true or false")
            default: throw Refusal("unknown field target.query.\(k); allowed: model, firmware, online, tag")
            }
        }
        return f
    }

    /// The filter of a fleet target: `{"all": true}`, or a query on model, firmware and
    /// `online: true` (what a node knows of its sessions from their hello). Nil for the others,
    /// which are resolved to a list first.
    static func fleetFilter(_ target: JSONValue) throws -> DeviceFilter? {
        guard case .object(let m) = target, m.count == 1 else { return nil }
        switch m[0].0 {
        case "all":
            guard case .bool(true) = m[0].1 else { throw Refusal("target.all must be true") }
            return DeviceFilter()
        case "query":
            let f = try query(m[0].1)
            return f.answerableBySessions ? f : nil
        default:
            return nil
        }
    }

    // MARK: - Views

    static func jobView(_ d: Document, counts: [String: Int]?, includeDevices: Bool) -> JSONValue {
        var out: [(String, JSONValue)] = []
        for (k, v) in d.fields {
            switch k {
            case "_id": out.append(("id", v.json))
            case "devices": if includeDevices { out.append((k, v.json)) }
            case "v", "lease", "leaseNode": break
            default: out.append((k, v.json))
            }
        }
        if let counts {
            out.append(("executions", .object(ExecutionState.allCases.map { ($0.rawValue, .int(Int64(counts[$0.rawValue] ?? 0))) })))
        }
        return .object(out)
    }

    /// An execution as the API shows it. Stored history entries are `{s, at, ...}` to keep
    /// documents small; the view names the state `state`.
    static func executionView(_ d: Document) -> JSONValue {
        .object(d.fields.compactMap { k, v in
            switch k {
            case "_id": return nil
            case "history":
                let entries = (v.arrayValue ?? []).map { e -> JSONValue in
                    guard let doc = e.documentValue else { return e.json }
                    return .object(doc.fields.map { ek, ev in (ek == "s" ? "state" : ek, ev.json) })
                }
                return (k, .array(entries))
            default: return (k, v.json)
            }
        })
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        var w = JSONWriter(capacity: 256)
        w.raw(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }
}
