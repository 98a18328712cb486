import Foundation
import STBProtocol

// Planning a command job (docs/commands.md, "Issuing a command"): every rule that needs no
// store. The API decodes the body into a ``JobRequest``, reads what the store knows (the
// catalogue entry a firmware update names, the boxes a target names or matches) and passes it
// in as plain values; the planner decides. It never reads the clock: `now` is a parameter.

/// Why a job request was refused; nothing is stored for it. `message` is what the operator
/// sees (the API answers 400 with it); `field` names the part of the request at fault.
public struct JobPlanError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The request is malformed: unknown field, missing name, bad params, deadline or target.
        case invalid
        /// The firmware a catalogue update names is unknown or cannot be served.
        case firmware
        /// A box the target names is not registered, or is revoked.
        case unknownDevice
        /// The target matches no box.
        case noDevices
        /// The target matches more boxes than one job may hold.
        case tooManyDevices
        /// Target boxes are of a model the catalogue firmware is not for.
        case wrongModel
    }

    public var kind: Kind
    public var field: String?
    public var message: String
    public init(_ kind: Kind, _ message: String, field: String?) {
        self.kind = kind
        self.message = message
        self.field = field
    }
    public var description: String { message }
}

/// A `POST /api/v1/commands` body, decoded: known fields only, and a command name. The other
/// members are kept as given; ``JobPlanner/plan(_:firmware:now:)`` checks them.
public struct JobRequest: Sendable, Equatable {
    public static let fields = ["name", "params", "target", "deadline", "expiresInSec"]

    public var name: String
    public var params: JSONValue?
    public var target: JSONValue?
    public var deadline: JSONValue?
    public var expiresInSec: JSONValue?

    public init(name: String, params: JSONValue? = nil, target: JSONValue? = nil, deadline: JSONValue? = nil, expiresInSec: JSONValue? = nil) {
        self.name = name
        self.params = params
        self.target = target
        self.deadline = deadline
        self.expiresInSec = expiresInSec
    }

    /// The members of the JSON object body.
    public init(body: [(String, JSONValue)]) throws(JobPlanError) {
        if let unknown = body.first(where: { !Self.fields.contains($0.0) }) {
            throw JobPlanError(.invalid, "unknown field \(unknown.0); allowed: \(Self.fields.joined(separator: ", "))", field: unknown.0)
        }
        let obj = JSONValue.object(body)
        guard case .string(let name)? = obj["name"] else { throw JobPlanError(.invalid, "name is required (a command name)", field: "name") }
        self.init(name: name, params: obj["params"], target: obj["target"], deadline: obj["deadline"], expiresInSec: obj["expiresInSec"])
    }

    /// The catalogue version a firmware update names when its params are only
    /// `{"version": v}`: the hub fills in the rest from the catalogue entry, which the caller
    /// reads and passes to the planner. Nil when the request names no catalogue entry.
    public var catalogueVersion: String? {
        guard name == CommandName.firmwareUpdate.rawValue, case .object(let m)? = params, m.count == 1, m[0].0 == "version",
            case .string(let v) = m[0].1
        else { return nil }
        return v
    }
}

/// What the planner needs of a firmware catalogue entry.
public struct FirmwareImage: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        case available
        /// Added to the catalogue, its image not uploaded yet.
        case awaitingUpload
        /// A download found the stored image damaged; `problem` says how.
        case unavailable(problem: String?)
    }

    public var version: String
    /// The models it is for; empty for any.
    public var models: [String]
    public var size: Int64
    public var sha256: String
    /// Where boxes download it; nil until it has one.
    public var url: String?
    public var status: Status

    public init(version: String, models: [String], size: Int64, sha256: String, url: String?, status: Status) {
        self.version = version
        self.models = models
        self.size = size
        self.sha256 = sha256
        self.url = url
        self.status = status
    }

    /// Why boxes cannot be sent this image now, or nil if they can.
    public var unservableReason: String? {
        switch status {
        case .available where url != nil: nil
        case .unavailable(let problem): "firmware \(version) is unavailable: \(problem ?? "its stored image is damaged"); upload the image again"
        default: "firmware \(version) has no image yet (upload it first)"
        }
    }

    /// The `firmware_update` that installs it (version, url, size and sha256 from the
    /// catalogue, checked like an operator's), or why it cannot be sent.
    public func updateCommand() throws(JobPlanError) -> Command {
        if let why = unservableReason { throw JobPlanError(.firmware, why, field: "params.version") }
        guard let url else { throw JobPlanError(.firmware, "firmware \(version) has no image yet (upload it first)", field: "params.version") }
        let params: JSONValue = .object([("version", .string(version)), ("url", .string(url)), ("size", .int(size)), ("sha256", .string(sha256))])
        return try JobPlanner.validate(name: CommandName.firmwareUpdate.rawValue, params: params)
    }
}

/// Boxes matched on what a node knows of them (`model`, `firmware`, `online`) and on `tag`.
public struct TargetQuery: Sendable, Equatable {
    public var model: String?
    public var firmware: String?
    public var online: Bool?
    public var tag: String?

    public init(model: String? = nil, firmware: String? = nil, online: Bool? = nil, tag: String? = nil) {
        self.model = model
        self.firmware = firmware
        self.online = online
        self.tag = tag
    }

    /// Whether a node can tell from its sessions' hello which connected boxes match: model
    /// and firmware, online only as true (tags live in the store). Fleet jobs need this.
    public var answerableBySessions: Bool { tag == nil && online != false }
}

/// A box as the store knows it: a named box found, or one a tag or query matched.
public struct TargetBox: Sendable, Equatable {
    public var id: String
    /// Empty when not read (a box connected here, when no model check needs it).
    public var model: String
    public var revoked: Bool
    public init(id: String, model: String, revoked: Bool = false) {
        self.id = id
        self.model = model
        self.revoked = revoked
    }
}

/// How the operator chose the boxes.
public enum JobTarget: Sendable, Equatable {
    case device(String)
    /// Duplicates removed, order kept.
    case devices([String])
    case tag(String)
    case query(TargetQuery)
    case all

    public static let kinds = "device, devices, tag, query, all"

    /// Checks a `target` object: exactly one kind, ids non-empty strings, a list of 1 to
    /// `maxDevices` ids, a query of known fields.
    public static func parse(_ value: JSONValue, maxDevices: Int) throws(JobPlanError) -> JobTarget {
        guard case .object(let m) = value, m.count == 1 else {
            throw JobPlanError(.invalid, "target must be an object with exactly one of \(kinds)", field: "target")
        }
        let (kind, value) = m[0]
        switch kind {
        case "device":
            guard case .string(let id) = value, !id.isEmpty else { throw JobPlanError(.invalid, "target.device must be a device id", field: "target.device") }
            return .device(id)
        case "devices":
            guard case .array(let items) = value else {
                throw JobPlanError(.invalid, "target.devices must be an array of device ids", field: "target.devices")
            }
            var ids: [String] = []
            for v in items {
                guard case .string(let s) = v, !s.isEmpty else {
                    throw JobPlanError(.invalid, "target.devices must hold device ids (strings)", field: "target.devices")
                }
                ids.append(s)
            }
            guard !ids.isEmpty else { throw JobPlanError(.invalid, "target.devices is empty", field: "target.devices") }
            guard ids.count <= maxDevices else {
                throw JobPlanError(.invalid, "target.devices holds more than \(maxDevices) devices; split it", field: "target.devices")
            }
            var seen = Set<String>()
            return .devices(ids.filter { seen.insert($0).inserted })
        case "tag":
            guard case .string(let t) = value, !t.isEmpty else { throw JobPlanError(.invalid, "target.tag must be a tag", field: "target.tag") }
            return .tag(t)
        case "query":
            return .query(try parseQuery(value))
        case "all":
            guard case .bool(true) = value else { throw JobPlanError(.invalid, "target.all must be true", field: "target.all") }
            return .all
        default:
            throw JobPlanError(.invalid, "unknown target \(kind); use one of \(kinds)", field: "target.\(kind)")
        }
    }

    static func parseQuery(_ value: JSONValue) throws(JobPlanError) -> TargetQuery {
        guard case .object(let q) = value, !q.isEmpty else {
            throw JobPlanError(
                .invalid, "target.query must be an object with model, firmware, online and/or tag (use {\"all\": true} for every device)",
                field: "target.query")
        }
        var f = TargetQuery()
        for (k, v) in q {
            switch (k, v) {
            case ("model", .string(let s)): f.model = s
            case ("firmware", .string(let s)): f.firmware = s
            case ("tag", .string(let s)): f.tag = s
            case ("online", .bool(let b)): f.online = b
            case ("model", _), ("firmware", _), ("tag", _): throw JobPlanError(.invalid, "target.query.\(k) must be a string", field: "target.query.\(k)")
            case ("online", _): throw JobPlanError(.invalid, "target.query.online must be true or false", field: "target.query.online")
            default: throw JobPlanError(.invalid, "unknown field target.query.\(k); allowed: model, firmware, online, tag", field: "target.query.\(k)")
            }
        }
        return f
    }

    /// The boxes it names, for `device` and `devices`; nil for the kinds the store resolves.
    public var ids: [String]? {
        switch self {
        case .device(let id): [id]
        case .devices(let ids): ids
        case .tag, .query, .all: nil
        }
    }

    /// The query the store resolves a `tag`, `query` or `all` target with; nil for named boxes.
    public var storeQuery: TargetQuery? {
        switch self {
        case .device, .devices: nil
        case .tag(let t): TargetQuery(tag: t)
        case .query(let q): q
        case .all: TargetQuery()
        }
    }

    /// The target's boxes from what the store holds: for named boxes, `found` are those the
    /// store has (unknown ones are refused, and so are revoked ones), in the order named; for
    /// the others, `found` are the boxes matched, as they are.
    public func boxes(found: [TargetBox]) throws(JobPlanError) -> [TargetBox] {
        guard let ids else { return found }
        let byID = Dictionary(found.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let unknown = ids.filter { byID[$0] == nil }
        if !unknown.isEmpty {
            let more = unknown.count > 10 ? " and \(unknown.count - 10) more" : ""
            throw JobPlanError(
                .unknownDevice, "unknown device\(unknown.count > 1 ? "s" : ""): \(unknown.prefix(10).joined(separator: ", "))\(more)",
                field: "target")
        }
        if let r = ids.first(where: { byID[$0]!.revoked }) { throw JobPlanError(.unknownDevice, "device \(r) is revoked", field: "target") }
        return ids.map { byID[$0]! }
    }
}

/// A job the planner accepted: what to send, to whom, until when.
public struct JobPlan: Sendable, Equatable {
    public enum Scope: Sendable, Equatable {
        /// Every box matching the query, each node matching its own sessions; the store is
        /// asked only whether any box matches.
        case fleet(TargetQuery)
        /// A list of boxes, read from the store (``JobPlanner/devices(_:found:)``).
        case list
    }

    public var command: Command
    /// The target as the operator gave it, stored on the job for display.
    public var targetJSON: JSONValue
    public var target: JobTarget
    public var scope: Scope
    /// The catalogue entry the command was filled from; its models are checked.
    public var firmware: FirmwareImage?
    public var createdAt: Int64
    public var deadline: Int64
}

/// The rules of a job request that need no store (docs/commands.md).
public struct JobPlanner: Sendable {
    /// Most boxes in one job.
    public var maxTargets: Int
    /// Lifetime of a job whose request gives no deadline.
    public var defaultTTLMillis: Int64

    public static let maxDeadlineMillis: Int64 = 30 * 86_400_000
    public static let maxExpiresInSec: Int64 = 2_592_000

    public init(maxTargets: Int = 100_000, defaultTTLMillis: Int64 = 86_400_000) {
        self.maxTargets = maxTargets
        self.defaultTTLMillis = defaultTTLMillis
    }

    /// Checks the request, in this order: the catalogue entry (`firmware`, the entry for
    /// `request.catalogueVersion`, nil if the catalogue has none; ignored when the request
    /// names no catalogue version), the command, the deadline, the target. `now` is ms since
    /// the epoch.
    public func plan(_ request: JobRequest, firmware: FirmwareImage?, now: Int64) throws(JobPlanError) -> JobPlan {
        var catalogue: FirmwareImage? = nil
        let command: Command
        if let version = request.catalogueVersion {
            guard let firmware else {
                throw JobPlanError(
                    .firmware, "firmware \(version) is not in the catalogue; give version, url, size and sha256, or add it to /api/v1/firmware",
                    field: "params.version")
            }
            command = try firmware.updateCommand()
            catalogue = firmware
        } else {
            command = try Self.validate(name: request.name, params: request.params)
        }
        let deadline = try deadline(request, now: now)
        guard let targetJSON = request.target else {
            throw JobPlanError(.invalid, "target is required: one of \(JobTarget.kinds)", field: "target")
        }
        let target = try JobTarget.parse(targetJSON, maxDevices: maxTargets)
        // Fleet targets (every box, or a query the sessions can answer) become fleet jobs,
        // unless the firmware is for some models only: then each box's model is checked.
        var scope = JobPlan.Scope.list
        if catalogue?.models.isEmpty ?? true {
            switch target {
            case .all: scope = .fleet(TargetQuery())
            case .query(let q) where q.answerableBySessions: scope = .fleet(q)
            default: break
            }
        }
        return JobPlan(
            command: command, targetJSON: targetJSON, target: target, scope: scope, firmware: catalogue,
            createdAt: now, deadline: deadline)
    }

    /// `deadline` (ms since the epoch or ISO 8601, after `now`, at most 30 days on) or
    /// `expiresInSec` (1 s to 30 days), not both; by default `now` + ``defaultTTLMillis``.
    public func deadline(_ request: JobRequest, now: Int64) throws(JobPlanError) -> Int64 {
        switch (request.deadline, request.expiresInSec) {
        case (.some, .some):
            throw JobPlanError(.invalid, "give deadline or expiresInSec, not both", field: "deadline")
        case (.some(let d), nil):
            let deadline: Int64
            switch d {
            case .int(let ms): deadline = ms
            case .string(let s):
                guard let ms = ISOTime.millis(s) else {
                    throw JobPlanError(.invalid, "deadline must be an ISO 8601 time or ms since the epoch", field: "deadline")
                }
                deadline = ms
            default: throw JobPlanError(.invalid, "deadline must be an ISO 8601 time or ms since the epoch", field: "deadline")
            }
            guard deadline > now else { throw JobPlanError(.invalid, "deadline has already passed", field: "deadline") }
            guard deadline <= now + Self.maxDeadlineMillis else { throw JobPlanError(.invalid, "deadline must be within 30 days", field: "deadline") }
            return deadline
        case (nil, .some(let e)):
            guard case .int(let sec) = e, (1...Self.maxExpiresInSec).contains(sec) else {
                throw JobPlanError(.invalid, "expiresInSec must be an integer from 1 to \(Self.maxExpiresInSec)", field: "expiresInSec")
            }
            return now + sec * 1000
        case (nil, nil):
            return now + defaultTTLMillis
        }
    }

    /// ``Command/validate(name:params:)``, its error's message prefixed with the field.
    static func validate(name: String, params: JSONValue?) throws(JobPlanError) -> Command {
        do { return try Command.validate(name: name, params: params) } catch {
            throw JobPlanError(.invalid, error.field.map { "\($0): \(error.message)" } ?? error.message, field: error.field)
        }
    }

    /// A fleet plan goes ahead if any box matches its query.
    public func confirmFleet(_ plan: JobPlan, anyMatch: Bool) throws(JobPlanError) {
        guard anyMatch else { throw JobPlanError(.noDevices, "the target matches no devices", field: "target") }
    }

    /// The boxes of a list plan. `found`: for named boxes, those the store has; for a tag,
    /// query or all, the boxes the store matched (up to ``maxTargets`` + 1, to tell "too many").
    public func devices(_ plan: JobPlan, found: [TargetBox]) throws(JobPlanError) -> [String] {
        let boxes = try plan.target.boxes(found: found)
        guard !boxes.isEmpty else { throw JobPlanError(.noDevices, "the target matches no devices", field: "target") }
        guard boxes.count <= maxTargets else {
            throw JobPlanError(.tooManyDevices, "the target matches more than \(maxTargets) devices; split it", field: "target")
        }
        if let fw = plan.firmware, !fw.models.isEmpty {
            let bad = boxes.filter { !fw.models.contains($0.model) }
            if !bad.isEmpty {
                throw JobPlanError(
                    .wrongModel,
                    "firmware \(fw.version) is for models \(fw.models.joined(separator: ", ")); \(bad.count) target devices are not (e.g. \(bad[0].id), model \(bad[0].model))",
                    field: "target")
            }
        }
        return boxes.map(\.id)
    }
}

/// ISO 8601 internet times, with or without fractional seconds (`2026-01-01T00:00:00Z`,
/// `2026-01-01T00:00:00.123Z` as JavaScript's `toISOString` gives).
public enum ISOTime {
    /// An ISO 8601 internet time (`2026-12-01T18:00:00Z`, with an offset or fractional seconds).
    /// Its calendar fields must exist as written: Foundation's formatter alone rolls
    /// `2026-02-30` over to March 2 and takes hour 24, which a caller never means.
    public static func date(_ s: String) -> Date? {
        guard fieldsExist(s) else { return nil }
        let f = ISO8601DateFormatter()
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }

    /// Whether `YYYY-MM-DDTHH:MM:SS` at the start of `s` names a real day (Gregorian, leap years
    /// included) and a time of day from 00:00:00 to 23:59:59.
    public static func fieldsExist(_ s: String) -> Bool {
        let u = Array(s.utf8.prefix(19))
        guard u.count == 19, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"), u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":")
        else { return false }
        func number(_ from: Int, _ count: Int) -> Int? {
            var n = 0
            for c in u[from..<(from + count)] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { return nil }
                n = n * 10 + Int(c - UInt8(ascii: "0"))
            }
            return n
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2)
        else { return false }
        return (1...12).contains(month) && (1...daysIn(month: month, year: year)).contains(day) && hour < 24 && minute < 60 && second < 60
    }

    /// Days in `month` (1–12) of `year`, Gregorian.
    public static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Ms since the epoch.
    public static func millis(_ s: String) -> Int64? { date(s).map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } }
}
