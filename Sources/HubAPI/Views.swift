import ArgusStore
import Commands
import Foundation
import Hummingbird
import MongoStore
import STBProtocol

// What the operator API shows: its own types, built from the stored records (ArgusStore),
// never the stored documents themselves. docs/api.md describes each; times are ISO 8601
// strings here except in jobs and executions (milliseconds).

/// A registered box (`GET /api/v1/devices`, `/devices/{id}`). Absent values are left out.
package struct DeviceView: ResponseEncodable, Equatable {
    package var id: String
    package var model: String
    package var tags: [String]
    package var firmware: String?
    package var online: Bool
    package var revoked: Bool
    package var node: String?
    package var session: String?
    package var connectedAt: Date?
    package var lastSeen: Date?
    package var remoteAddress: String?
    package var bootId: String?
    package var createdAt: Date?

    package init(_ r: DeviceRecord) {
        id = r.id; model = r.model; tags = r.tags; firmware = r.firmware; online = r.online; revoked = r.revoked; node = r.node
        session = r.session; connectedAt = r.connectedAt; lastSeen = r.lastSeen; remoteAddress = r.remoteAddress; bootId = r.bootId
        createdAt = r.createdAt
    }
}

/// An API token as listed to admins (`GET /api/v1/tokens`): its public id, never the token
/// or its hash.
package struct TokenView: ResponseEncodable, Equatable {
    package var id: String
    package var name: String
    package var role: Role
    package var createdAt: Date?
    package var createdBy: String?
    package var revoked: Bool

    package init(_ r: TokenRecord) {
        id = r.id; name = r.name; role = r.role; createdAt = r.createdAt; createdBy = r.createdBy; revoked = r.revoked
    }
}

/// An audit entry (`GET /api/v1/audit`).
package struct AuditEntryView: ResponseEncodable, Equatable {
    package var at: Date
    package var actor: String
    package var tokenId: String
    package var role: String
    package var action: String
    package var target: String?
    package var parameters: [String: String]
    package var result: String
    package var node: String

    package init(_ e: AuditEntry) {
        at = e.at; actor = e.actor; tokenId = e.tokenId; role = e.role; action = e.action; target = e.target
        parameters = e.parameters; result = e.result; node = e.node
    }
}

/// An alarm (`GET /api/v1/alarms`, `POST /api/v1/alarms/{id}/ack`).
package struct AlarmView: ResponseEncodable, Equatable {
    package var id: String
    package var key: String
    package var rule: String
    package var target: String
    package var state: AlarmStatus
    package var raisedAt: Date?
    package var acknowledgedAt: Date?
    package var acknowledgedBy: String?
    package var clearedAt: Date?
    package var details: [String: String]

    package init(_ r: AlarmRecord) {
        id = r.id; key = r.key; rule = r.rule; target = r.target; state = r.state; raisedAt = r.raisedAt
        acknowledgedAt = r.acknowledgedAt; acknowledgedBy = r.acknowledgedBy; clearedAt = r.clearedAt; details = r.details
    }
}

/// A firmware catalogue entry (`/api/v1/firmware`).
package struct FirmwareView: ResponseEncodable, Equatable {
    package var version: String
    package var models: [String]
    package var size: Int
    package var sha256: String
    package var url: String?
    package var status: FirmwareStatus
    package var uploaded: Bool
    package var problem: String?
    package var createdAt: Date?
    package var createdBy: String?
    package var generation: String?
    package var uploadingSince: Date?

    package init(_ r: FirmwareRecord) {
        version = r.version; models = r.models; size = r.size; sha256 = r.sha256; url = r.url; status = r.status
        uploaded = r.uploaded; problem = r.problem; createdAt = r.createdAt; createdBy = r.createdBy; generation = r.generation
        uploadingSince = r.uploadingSince
    }
}

/// Milliseconds since the epoch, as jobs and executions show times (the same value the
/// stored BSON date gives as JSON).
private func millisJSON(_ d: Date) -> JSONValue { BSON.date(d).json }

/// A command job (`/api/v1/commands`). Written with the protocol's ``JSONWriter`` (its
/// `params`, `target` and counts are JSON values), so it is rendered by ``json``.
package struct JobView: Sendable, Equatable {
    package var record: JobRecord
    /// `GET /api/v1/commands/{id}` only: executions per state.
    package var counts: [String: Int]?
    /// `?devices=true` only.
    package var includeDevices: Bool

    package init(_ record: JobRecord, counts: [String: Int]? = nil, includeDevices: Bool = false) {
        self.record = record
        self.counts = counts
        self.includeDevices = includeDevices
    }

    package var json: JSONValue {
        let r = record
        var out: [(String, JSONValue)] = [
            ("id", .string(r.id)), ("name", .string(r.name)), ("params", BSON.document(r.params).json),
        ]
        if let t = r.target { out.append(("target", t.json)) }
        if includeDevices, let devices = r.devices { out.append(("devices", .array(devices.map { .string($0) }))) }
        if let spec = r.spec {
            var f: [(String, JSONValue)] = []
            if let m = spec.model { f.append(("model", .string(m))) }
            if let fw = spec.firmware { f.append(("firmware", .string(fw))) }
            if let o = spec.online { f.append(("online", .bool(o))) }
            out.append(("spec", .object(f)))
        }
        if let c = r.count { out.append(("count", .int(Int64(c)))) }
        out += [
            ("createdAt", millisJSON(r.createdAt)), ("deadline", millisJSON(r.deadline)), ("createdBy", .string(r.createdBy)),
            ("node", .string(r.node)), ("state", .string(r.state.rawValue)),
        ]
        if let at = r.canceledAt { out.append(("canceledAt", millisJSON(at))) }
        if let by = r.canceledBy { out.append(("canceledBy", .string(by))) }
        out.append(("materialized", .bool(r.materialized)))
        if let n = r.materializedCount { out.append(("materializedCount", .int(Int64(n)))) }
        if let at = r.updatedAt { out.append(("updatedAt", millisJSON(at))) }
        if let rollout = r.rollout { out.append(("rollout", .string(rollout))) }
        if let counts {
            out.append(("executions", .object(ExecutionState.allCases.map { ($0.rawValue, .int(Int64(counts[$0.rawValue] ?? 0))) })))
        }
        return .object(out)
    }
}

/// An execution (`/api/v1/commands/{id}/executions…`). Stored history entries are
/// `{s, at, …}` to keep documents small; the view names the state `state`.
package struct ExecutionView: Sendable, Equatable {
    package var record: ExecutionRecord

    package init(_ record: ExecutionRecord) { self.record = record }

    package var json: JSONValue {
        let r = record
        var out: [(String, JSONValue)] = [("job", .string(r.job)), ("device", .string(r.device))]
        if let n = r.name { out.append(("name", .string(n))) }
        if let p = r.params { out.append(("params", BSON.document(p).json)) }
        if let d = r.deadline { out.append(("deadline", millisJSON(d))) }
        out.append(("state", .string(r.state.rawValue)))
        if let a = r.attempts { out.append(("attempts", .int(Int64(a)))) }
        if let c = r.confirmed { out.append(("confirmed", .bool(c))) }
        if let at = r.confirmedAt { out.append(("confirmedAt", millisJSON(at))) }
        if let n = r.node { out.append(("node", .string(n))) }
        if let p = r.progress { out.append(("progress", .string(p))) }
        if let why = r.reason { out.append(("reason", .string(why))) }
        if let result = r.result { out.append(("result", result.json)) }
        if let history = r.history {
            out.append(
                (
                    "history",
                    .array(
                        history.map { e in
                            var entry: [(String, JSONValue)] = [("state", .string(e.state.rawValue)), ("at", millisJSON(e.at))]
                            if let p = e.progress { entry.append(("progress", .string(p))) }
                            if let why = e.reason { entry.append(("reason", .string(why))) }
                            return .object(entry)
                        })
                ))
        }
        if let at = r.createdAt { out.append(("createdAt", millisJSON(at))) }
        if let at = r.updatedAt { out.append(("updatedAt", millisJSON(at))) }
        if let at = r.finishedAt { out.append(("finishedAt", millisJSON(at))) }
        return .object(out)
    }
}
