import ArgusSupport
import Foundation
import Logging
import MongoStore
import Telemetry

/// An alarm's stored `state`: raised → acknowledged → cleared. (Not `Telemetry.AlarmState`,
/// the evaluators' in-memory state.)
package enum AlarmStatus: String, Codable, Sendable, CaseIterable {
    case raised
    case acknowledged
    case cleared
}

/// A document of `alarms`, decoded with ``BSONDecoder``. The API shows it as its own view
/// (HubAPI `AlarmView`).
package struct AlarmRecord: Codable, Sendable, Equatable {
    package var id: String
    package var key: String
    package var rule: String
    package var target: String
    package var state: AlarmStatus
    /// Present (true) only while not cleared: the unique partial index's key.
    package var active: Bool?
    package var raisedAt: Date?
    package var acknowledgedAt: Date?
    package var acknowledgedBy: String?
    package var clearedAt: Date?
    package var details: [String: String]

    package enum CodingKeys: String, CodingKey {
        case id = "_id", key, rule, target, state, active, raisedAt, acknowledgedAt, acknowledgedBy, clearedAt, details
    }

    package init(
        id: String, key: String, rule: String, target: String, state: AlarmStatus, active: Bool? = nil, raisedAt: Date? = nil,
        acknowledgedAt: Date? = nil, acknowledgedBy: String? = nil, clearedAt: Date? = nil, details: [String: String] = [:]
    ) {
        self.id = id; self.key = key; self.rule = rule; self.target = target; self.state = state; self.active = active
        self.raisedAt = raisedAt; self.acknowledgedAt = acknowledgedAt; self.acknowledgedBy = acknowledgedBy
        self.clearedAt = clearedAt; self.details = details
    }
}

package struct AlarmRepository: Sendable {
    package let alarms: MongoCollection
    package let devices: MongoCollection
    package let decodeFailures: DecodeFailures
    package let deviceFailures: DecodeFailures
    package init(store: MongoStore, logger: Logger = Logger(label: "argus.store")) {
        alarms = store.collection(Schema.alarms)
        devices = store.collection(Schema.devices)
        decodeFailures = DecodeFailures(collection: Schema.alarms, logger: logger)
        deviceFailures = DecodeFailures(collection: Schema.devices, logger: logger)
    }

    /// An alarm's target (projection).
    private struct AlarmTarget: Decodable { var target: String }

    /// A box's id and when it was last seen (projection).
    private struct Seen: Decodable {
        var id: String
        var lastSeen: Date?
        enum CodingKeys: String, CodingKey { case id = "_id", lastSeen }
    }

    /// Newest first; an alarm that does not decode is left out (counted and logged).
    package func list(state: AlarmStatus?, rule: String?, limit: Int) async throws -> [AlarmRecord] {
        var q = Document()
        if let state { q["state"] = .string(state.rawValue) }
        if let rule { q["rule"] = .string(rule) }
        return decodeFailures.decodeEach(try await alarms.find(q, sort: ["raisedAt": -1], limit: limit), as: AlarmRecord.self)
    }

    package enum AckOutcome { case acknowledged(AlarmRecord), notFound, alreadyCleared, alreadyAcknowledged(AlarmRecord) }

    /// raised → acknowledged. Acknowledging twice is harmless. An alarm that does not decode
    /// throws ``BSONDecodingError`` (counted and logged).
    package func acknowledge(id: String, by who: String, now: Date) async throws -> AckOutcome {
        if let d = try await alarms.findOneAndUpdate(
            ["_id": .string(id), "state": .string(AlarmStatus.raised.rawValue)],
            ["$set": ["state": .string(AlarmStatus.acknowledged.rawValue), "acknowledgedAt": .date(now), "acknowledgedBy": .string(who)]])
        {
            return .acknowledged(try decodeFailures.decode(d, as: AlarmRecord.self))
        }
        guard let d = try await alarms.findOne(["_id": .string(id)]) else { return .notFound }
        let r = try decodeFailures.decode(d, as: AlarmRecord.self)
        return r.state == .cleared ? .alreadyCleared : .alreadyAcknowledged(r)
    }

    /// Offline alarms to raise and to clear: boxes offline for longer than `after`, and boxes
    /// with an active offline alarm that are back.
    package func offlineChanges(after: TimeInterval, now: Date) async throws -> [AlarmChange] {
        let active = decodeFailures.decodeEach(
            try await alarms.find(["rule": "offline", "active": true], projection: ["target": 1]), as: AlarmTarget.self
        ).map(\.target)
        let activeSet = Set(active)
        var changes: [AlarmChange] = []
        if !active.isEmpty {
            let back = try await devices.find(["_id": ["$in": .array(active.map { .string($0) })], "online": true], projection: ["_id": 1])
            changes += deviceFailures.decodeEach(back, as: Seen.self).map { .clear(key: "offline|\($0.id)") }
        }
        let stale = try await devices.find(
            ["online": false, "lastSeen": ["$lt": .date(now.addingTimeInterval(-after))], "revoked": ["$ne": true]],
            limit: 5000, projection: ["_id": 1, "lastSeen": 1])
        for d in deviceFailures.decodeEach(stale, as: Seen.self) where !activeSet.contains(d.id) {
            let seen = d.lastSeen.map { ISO8601DateFormatter().string(from: $0) } ?? ""
            changes.append(.raise(key: "offline|\(d.id)", rule: "offline", target: d.id, details: ["lastSeen": seen]))
        }
        return changes
    }
}
