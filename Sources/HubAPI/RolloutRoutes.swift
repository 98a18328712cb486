import ArgusStore
import ArgusSupport
import CommandRuntime
import Commands
import Foundation
import HubGateway
import Hummingbird
import STBProtocol

package struct CreateRolloutRequest: Decodable {
    package struct Health: Decodable { var windowMinutes: Int; var minExposureHours: Double; var maxRelativeIncrease: Double; var confidence: Double? }
    package struct Window: Decodable { var startMinute: Int; var endMinute: Int; var requireStandby: Bool?; var idleMinutes: Int? }
    package var firmware: String
    package var waves: [Double]?
    package var ratePerMinute: Int?
    package var successThreshold: Double?
    package var failureThreshold: Double?
    package var minFailureCount: Int?
    package var onFailure: String?
    package var health: Health?
    package var window: Window?
    package var utcOffsetMinutes: Int?
}

package struct RolloutAction: Decodable { var reason: String? }

/// `/api/v1/rollouts`: firmware rollouts in waves. See docs/commands.md.
package enum RolloutRoutes {
    package static func add(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies, _ rollouts: RolloutService) {
        api.post("rollouts") { request, context -> Response in
            let who = try context.caller()
            var auditParams: [String: String] = [:]
            do {
                let members = try await CommandRoutes.parseObject(request, context)
                guard let target = JSONValue.object(members)["target"] else { throw Refusal("target is required: one of device, devices, tag, query, all") }
                let rest = JSONValue.object(members.filter { $0.0 != "target" })
                var w = JSONWriter(); w.raw(rest)
                let body: CreateRolloutRequest
                do { body = try JSONDecoder().decode(CreateRolloutRequest.self, from: Data(w.bytes)) } catch let DecodingError.keyNotFound(k, _) {
                    throw Refusal("missing field \(k.stringValue)")
                } catch { throw Refusal("invalid rollout: \(error)") }
                auditParams["firmware"] = body.firmware
                guard let fw = try await OperatorAPI.storeCall({ try await rollouts.firmware.get(body.firmware) }) else {
                    throw Refusal("firmware \(body.firmware) is not in the catalogue")
                }
                if let why = fw.unservableReason { throw Refusal(why) }
                let policy: RolloutPolicy
                do {
                    let health = try body.health.map { h throws(CommandError) in
                        try HealthGate(
                            windowMinutes: h.windowMinutes, minExposureHours: h.minExposureHours,
                            maxRelativeIncrease: h.maxRelativeIncrease, confidence: h.confidence ?? 2.33)
                    }
                    let window = try body.window.map { x throws(CommandError) in
                        try MaintenanceWindow(
                            startMinute: x.startMinute, endMinute: x.endMinute, requireStandby: x.requireStandby ?? false, idleMinutes: x.idleMinutes)
                    }
                    guard let onFailure = RolloutPolicy.OnFailure(rawValue: body.onFailure ?? "pause") else {
                        throw CommandError("onFailure must be pause or abort", field: "onFailure")
                    }
                    policy = try RolloutPolicy(
                        waves: body.waves ?? [1, 10, 50, 100], ratePerMinute: body.ratePerMinute ?? 60,
                        successThreshold: body.successThreshold ?? 0.95, failureThreshold: body.failureThreshold ?? 0.1,
                        minFailureCount: body.minFailureCount ?? 5, onFailure: onFailure, health: health, window: window)
                } catch let e as CommandError { throw Refusal(e.field.map { "\($0): \(e.message)" } ?? e.message) }
                let offset = body.utcOffsetMinutes ?? 0
                guard (-720...840).contains(offset) else { throw Refusal("utcOffsetMinutes must be from -720 to 840") }
                let limit = rollouts.commands.configuration.maxTargets
                let boxes: [TargetBox]
                do {
                    let t = try JobTarget.parse(target, maxDevices: limit)
                    boxes = try t.boxes(found: try await CommandRoutes.lookup(t, devices: deps.devices, limit: limit))
                } catch let e as JobPlanError { throw Refusal(e) }
                guard !boxes.isEmpty else { throw Refusal("the target matches no devices") }
                if !fw.models.isEmpty, let bad = boxes.first(where: { !fw.models.contains($0.model) }) {
                    throw Refusal("firmware \(fw.version) is for models \(fw.models.joined(separator: ", ")); target device \(bad.id) is model \(bad.model)")
                }
                let now = rollouts.commands.now()
                let machine: RolloutMachine
                do { machine = try RolloutMachine(policy: policy, targetCount: boxes.count, createdAt: now) } catch let e as CommandError {
                    throw Refusal(e.message)
                }
                var tw = JSONWriter(); tw.raw(target)
                let r = Rollout(
                    id: "r" + Job.newID(now: now).dropFirst(), firmware: fw.version, target: String(decoding: tw.bytes, as: UTF8.self),
                    utcOffsetMinutes: offset, createdBy: who.name, machine: machine, remaining: boxes.map(\.id), batches: [])
                do { try await rollouts.insert(r, now: now) } catch { throw OperatorAPI.storeUnavailable(error, context) }
                auditParams["count"] = String(boxes.count)
                auditParams["waves"] = policy.waves.map { "\($0)" }.joined(separator: ",")
                await deps.audit.record(who, in: context, action: "rollout.create", target: r.id, parameters: auditParams, result: "ok")
                return CommandRoutes.json(.created, view(r))
            } catch let r as Refusal {
                await deps.audit.record(who, in: context, action: "rollout.create", target: nil, parameters: auditParams, result: "rejected: \(r.message)")
                throw r.http
            }
        }

        api.get("rollouts/{id}") { _, context -> Response in
            let id = try context.parameters.require("id")
            guard let (r, _) = try await OperatorAPI.storeCall({ try await rollouts.load(id) }) else { throw HTTPError(.notFound, message: "no rollout \(id)") }
            return CommandRoutes.json(.ok, view(r))
        }

        api.get("rollouts") { _, context -> Response in
            // A rollout that does not decode is left out (counted and logged), not the whole list.
            let items = try await OperatorAPI.storeCall { try await rollouts.list(limit: 100) }.map(view)
            return CommandRoutes.json(.ok, .object([("items", .array(items))]))
        }

        for action in ["pause", "resume", "abort"] {
            api.post("rollouts/{id}/\(action)") { request, context -> Response in
                let who = try context.caller()
                let id = try context.parameters.require("id")
                let reason = try await actionReason(request, context) ?? "\(action == "abort" ? "aborted" : "\(action)d") by \(who.name)"
                do {
                    let r: Rollout?
                    switch action {
                    case "pause": r = try await rollouts.pause(id, reason: reason)
                    case "resume": r = try await rollouts.resume(id)
                    default: r = try await rollouts.abort(id, reason: reason)
                    }
                    guard let r else {
                        await deps.audit.record(who, in: context, action: "rollout.\(action)", target: id, result: "not_found")
                        throw HTTPError(.notFound, message: "no rollout \(id)")
                    }
                    await deps.audit.record(who, in: context, action: "rollout.\(action)", target: id, parameters: ["reason": reason], result: "ok")
                    return CommandRoutes.json(.ok, view(r))
                } catch let e as CommandError {
                    await deps.audit.record(who, in: context, action: "rollout.\(action)", target: id, result: "rejected: \(e.message)")
                    throw HTTPError(.conflict, message: e.message)
                } catch let e as HTTPError { throw e } catch { throw OperatorAPI.storeUnavailable(error, context) }
            }
        }
    }

    /// Longest `reason` of a pause or abort (it goes to the audit log and the rollout's history).
    package static let maxReason = 500

    /// The optional body of pause and abort, `{"reason": "..."}`: nil for an empty body (the
    /// caller gives the default reason); anything else must be that object, or it is a 400
    /// naming what is wrong, and the rollout is left as it was.
    package static func actionReason(_ request: Request, _ context: HubRequestContext) async throws -> String? {
        let buffer = try await Validate.collect(request, context)
        if buffer.readableBytesView.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D].contains($0) }) { return nil }
        guard let reason = try Validate.decode(RolloutAction.self, buffer).reason else { return nil }
        guard (1...maxReason).contains(reason.count) else {
            throw HTTPError(.badRequest, message: "reason must be 1 to \(maxReason) characters")
        }
        return reason
    }

    package static func view(_ r: Rollout) -> JSONValue {
        let m = r.machine
        var out: [(String, JSONValue)] = [
            ("id", .string(r.id)), ("firmware", .string(r.firmware)), ("state", .string(m.state.name)),
            ("targetCount", .int(Int64(m.targetCount))), ("started", .int(Int64(m.started))), ("succeeded", .int(Int64(m.succeeded))),
            ("failed", .int(Int64(m.failed))), ("inFlight", .int(Int64(m.inFlight))), ("remaining", .int(Int64(r.remaining.count))),
            ("currentWave", .int(Int64(m.currentWave))), ("createdBy", .string(r.createdBy)),
            (
                "waves",
                .array(
                    m.waves.map { w in
                        .object([
                            ("percent", .double(w.percent)), ("target", .int(Int64(w.target))), ("started", .int(Int64(w.started))),
                            ("succeeded", .int(Int64(w.succeeded))), ("failed", .int(Int64(w.failed))),
                            ("startedAt", w.startedAt.map { .int($0) } ?? .null), ("endedAt", w.endedAt.map { .int($0) } ?? .null),
                        ])
                    })
            ),
            (
                "history",
                .array(
                    m.history.map { h in
                        .object([("state", .string(h.state.name)), ("reason", h.state.reason.map { .string($0) } ?? .null), ("at", .int(h.at))])
                    })
            ),
            ("jobs", .array(r.batches.map { .string($0.job) })),
        ]
        if let reason = m.state.reason { out.append(("reason", .string(reason))) }
        if let h = r.lastHealth { out.append(("lastHealth", .string(h))) }
        return .object(out)
    }
}
