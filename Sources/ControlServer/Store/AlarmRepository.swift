import Foundation
import MongoStore
import Telemetry

/// An alarm as the API shows it.
struct AlarmRecord: Codable, Sendable, Equatable {
    var id: String
    var key: String
    var rule: String
    var target: String
    /// raised → acknowledged → cleared
    var state: String
    var raisedAt: Date?
    var acknowledgedAt: Date?
    var acknowledgedBy: String?
    var clearedAt: Date?
    var details: [String: String]

    init(_ d: Document) {
        id = d["_id"]?.stringValue ?? ""
        key = d["key"]?.stringValue ?? ""
        rule = d["rule"]?.stringValue ?? ""
        target = d["target"]?.stringValue ?? ""
        state = d["state"]?.stringValue ?? ""
        raisedAt = d["raisedAt"]?.dateValue
        acknowledgedAt = d["acknowledgedAt"]?.dateValue
        acknowledgedBy = d["acknowledgedBy"]?.stringValue
        clearedAt = d["clearedAt"]?.dateValue
        details = Dictionary(uniqueKeysWithValues: (d["details"]?.documentValue ?? [:]).fields.map { ($0.key, $0.value.stringValue ?? "") })
    }
}

struct AlarmRepository: Sendable {
    let alarms: MongoCollection
    let devices: MongoCollection
    init(store: MongoStore) {
        alarms = store.collection(Schema.alarms)
        devices = store.collection(Schema.devices)
    }

    func list(state: String?, rule: String?, limit: Int) async throws -> [AlarmRecord] {
        var q = Document()
        if let state { q["state"] = .string(state) }
        if let rule { q["rule"] = .string(rule) }
        return try await alarms.find(q, sort: ["raisedAt": -1], limit: limit).map(AlarmRecord.init)
    }

    enum AckOutcome { case acknowledged(AlarmRecord), notFound, alreadyCleared, alreadyAcknowledged(AlarmRecord) }

    /// raised → acknowledged. Acknowledging twice is harmless.
    func acknowledge(id: String, by who: String, now: Date) async throws -> AckOutcome {
        if let d = try await alarms.findOneAndUpdate(
            ["_id": .string(id), "state": "raised"],
            ["$set": ["state": "acknowledged", "acknowledgedAt": .date(now), "acknowledgedBy": .string(who)]])
        {
            return .acknowledged(AlarmRecord(d))
        }
        guard let d = try await alarms.findOne(["_id": .string(id)]) else { return .notFound }
        let r = AlarmRecord(d)
        return r.state == "cleared" ? .alreadyCleared : .alreadyAcknowledged(r)
    }

    /// Offline alarms to raise and to clear: boxes offline for longer than `after`, and boxes
    /// with an active offline alarm that are back.
    func offlineChanges(after: TimeInterval, now: Date) async throws -> [AlarmChange] {
        let active = try await alarms.find(["rule": "offline", "active": true], projection: ["target": 1]).compactMap { $0["target"]?.stringValue }
        let activeSet = Set(active)
        var changes: [AlarmChange] = []
        if !active.isEmpty {
            let back = try await devices.find(["_id": ["$in": .array(active.map { .string($0) })], "online": true], projection: ["_id": 1])
            changes += back.compactMap { $0["_id"]?.stringValue }.map { .clear(key: "offline|\($0)") }
        }
        let stale = try await devices.find(
            ["online": false, "lastSeen": ["$lt": .date(now.addingTimeInterval(-after))], "revoked": ["$ne": true]],
            limit: 5000, projection: ["_id": 1, "lastSeen": 1])
        for d in stale {
            guard let id = d["_id"]?.stringValue, !activeSet.contains(id) else { continue }
            let seen = d["lastSeen"]?.dateValue.map { ISO8601DateFormatter().string(from: $0) } ?? ""
            changes.append(.raise(key: "offline|\(id)", rule: "offline", target: id, details: ["lastSeen": seen]))
        }
        return changes
    }
}
