import ArgusSupport
import Foundation
import MongoStore
import Telemetry

/// An alarm as the API shows it.
package struct AlarmRecord: Codable, Sendable, Equatable {
    package var id: String
    package var key: String
    package var rule: String
    package var target: String
    /// raised → acknowledged → cleared
    package var state: String
    package var raisedAt: Date?
    package var acknowledgedAt: Date?
    package var acknowledgedBy: String?
    package var clearedAt: Date?
    package var details: [String: String]

    package init(_ d: Document) {
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

package struct AlarmRepository: Sendable {
    package let alarms: MongoCollection
    package let devices: MongoCollection
    package init(store: MongoStore) {
        alarms = store.collection(Schema.alarms)
        devices = store.collection(Schema.devices)
    }

    package func list(state: String?, rule: String?, limit: Int) async throws -> [AlarmRecord] {
        var q = Document()
        if let state { q["state"] = .string(state) }
        if let rule { q["rule"] = .string(rule) }
        return try await alarms.find(q, sort: ["raisedAt": -1], limit: limit).map(AlarmRecord.init)
    }

    package enum AckOutcome { case acknowledged(AlarmRecord), notFound, alreadyCleared, alreadyAcknowledged(AlarmRecord) }

    /// raised → acknowledged. Acknowledging twice is harmless.
    package func acknowledge(id: String, by who: String, now: Date) async throws -> AckOutcome {
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
    package func offlineChanges(after: TimeInterval, now: Date) async throws -> [AlarmChange] {
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
