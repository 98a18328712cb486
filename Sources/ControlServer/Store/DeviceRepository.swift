import Foundation
import MongoStore

/// A registered box, as the operator API shows it.
struct DeviceRecord: Sendable, Codable, Equatable {
    var id: String
    var model: String
    var tags: [String]
    var firmware: String?
    var online: Bool
    var revoked: Bool
    var node: String?
    var session: String?
    var connectedAt: Date?
    var lastSeen: Date?
    var remoteAddress: String?
    var bootId: String?
    var createdAt: Date?

    init(
        id: String, model: String, tags: [String], firmware: String? = nil, online: Bool = false, revoked: Bool = false,
        node: String? = nil, session: String? = nil, connectedAt: Date? = nil, lastSeen: Date? = nil,
        remoteAddress: String? = nil, bootId: String? = nil, createdAt: Date? = nil
    ) {
        self.id = id; self.model = model; self.tags = tags; self.firmware = firmware; self.online = online
        self.revoked = revoked; self.node = node; self.session = session; self.connectedAt = connectedAt
        self.lastSeen = lastSeen; self.remoteAddress = remoteAddress; self.bootId = bootId; self.createdAt = createdAt
    }

    init(_ d: Document) {
        self.init(
            id: d["_id"]?.stringValue ?? "", model: d["model"]?.stringValue ?? "",
            tags: d["tags"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            firmware: d["firmware"]?.stringValue, online: d["online"]?.boolValue ?? false,
            revoked: d["revoked"]?.boolValue ?? false, node: d["node"]?.stringValue,
            session: d["session"]?.stringValue, connectedAt: d["connectedAt"]?.dateValue,
            lastSeen: d["lastSeen"]?.dateValue, remoteAddress: d["remoteAddress"]?.stringValue,
            bootId: d["bootId"]?.stringValue, createdAt: d["createdAt"]?.dateValue)
    }
}

/// A box to register, its secret already hashed.
struct NewDevice: Sendable, Equatable {
    var id: String
    var model: String
    var tags: [String]
    var secretHash: String
}

/// Filters for listing devices. Every combination is served by an index on its first field.
struct DeviceFilter: Sendable, Equatable {
    var online: Bool?
    var model: String?
    var firmware: String?
    var tag: String?

    /// Whether a node can tell from its sessions' hello which connected boxes match: model
    /// and firmware, online only as true (tags live in the store). Fleet jobs need this.
    var answerableBySessions: Bool { tag == nil && online != false }
}

/// Registered boxes in the `devices` collection.
struct DeviceRepository: Sendable {
    let collection: MongoCollection
    /// Never returned to a caller.
    static let hiddenFields: Document = ["secretHash": 0]

    let revocations: MongoCollection

    init(store: MongoStore) {
        collection = store.collection(Schema.devices)
        revocations = store.collection(Schema.revocations)
    }

    /// The stored document of a newly registered box.
    static func document(_ d: NewDevice, now: Date) -> Document {
        [
            "_id": .string(d.id), "model": .string(d.model), "tags": .array(d.tags.map { .string($0) }),
            "secretHash": .string(d.secretHash), "online": false, "revoked": false, "createdAt": .date(now),
        ]
    }

    /// Registers a box. Throws `duplicateKey` if the id exists.
    func register(id: String, model: String, tags: [String], secretHash: String, now: Date) async throws -> DeviceRecord {
        try await collection.insertOne(Self.document(NewDevice(id: id, model: model, tags: tags, secretHash: secretHash), now: now))
        return DeviceRecord(id: id, model: model, tags: tags, createdAt: now)
    }

    /// Registers `boxes` (distinct ids) with one unordered insertMany. Returns the positions
    /// in `boxes` of those whose id was already registered (not stored); every other box is
    /// stored. A store failure throws, and then some of the boxes may have been stored.
    func registerMany(_ boxes: [NewDevice], now: Date) async throws -> [Int] {
        try await collection.insertMany(boxes.map { Self.document($0, now: now) }).duplicateIndexes
    }

    func get(_ id: String) async throws -> DeviceRecord? {
        try await collection.findOne(["_id": .string(id)], projection: Self.hiddenFields).map(DeviceRecord.init)
    }

    /// One page, ordered by id, starting after `cursor`.
    func list(_ f: DeviceFilter, after cursor: String?, limit: Int) async throws -> (items: [DeviceRecord], next: String?) {
        var q = Document()
        if let o = f.online { q["online"] = .bool(o) }
        if let m = f.model { q["model"] = .string(m) }
        if let fw = f.firmware { q["firmware"] = .string(fw) }
        if let t = f.tag { q["tags"] = .string(t) }
        if let cursor { q["_id"] = ["$gt": .string(cursor)] }
        let docs = try await collection.find(q, sort: ["_id": 1], limit: limit + 1, projection: Self.hiddenFields)
        let items = docs.prefix(limit).map(DeviceRecord.init)
        return (Array(items), docs.count > limit ? items.last?.id : nil)
    }

    /// The stored secret hash, unless the box is revoked or unknown.
    func credentials(_ id: String) async throws -> String? {
        guard let d = try await collection.findOne(["_id": .string(id)], projection: ["secretHash": 1, "revoked": 1]),
            d["revoked"]?.boolValue != true
        else { return nil }
        return d["secretHash"]?.stringValue
    }

    /// Revokes a box's credentials. Returns false if it does not exist.
    func revoke(_ id: String, now: Date) async throws -> Bool {
        let r = try await collection.updateOne(
            ["_id": .string(id)],
            ["$set": ["revoked": true, "revokedAt": .date(now)], "$unset": ["secretHash": ""]])
        guard r.matchedCount == 1 else { return false }
        // Tells every node (their credential caches and live sessions): see RevocationFeed.
        _ = try await revocations.insertMany([["_id": .string("\(id)|\(now.millis)"), "device": .string(id), "at": .date(now)]])
        return true
    }

    /// Revocations recorded since `since`, oldest first: (device, at).
    func revocations(since: Date, limit: Int = 1000) async throws -> [(device: String, at: Date)] {
        try await revocations.find(["at": ["$gt": .date(since)]], sort: ["at": 1], limit: limit).compactMap { d in
            guard let id = d["device"]?.stringValue, let at = d["at"]?.dateValue else { return nil }
            return (id, at)
        }
    }

    /// The non-revoked boxes matching `filter` (all boxes for an empty filter), as (id, model),
    /// at most `limit`.
    func resolve(_ f: DeviceFilter, limit: Int) async throws -> [(id: String, model: String)] {
        var q: Document = ["revoked": ["$ne": true]]
        if let o = f.online { q["online"] = .bool(o) }
        if let m = f.model { q["model"] = .string(m) }
        if let fw = f.firmware { q["firmware"] = .string(fw) }
        if let t = f.tag { q["tags"] = .string(t) }
        return try await collection.find(q, limit: limit, projection: ["_id": 1, "model": 1, "revoked": 1]).compactMap { d in
            d["_id"]?.stringValue.map { ($0, d["model"]?.stringValue ?? "") }
        }
    }

    /// The given boxes as (id, model, revoked); unknown ids are left out.
    func lookup(_ ids: [String]) async throws -> [(id: String, model: String, revoked: Bool)] {
        var out: [(id: String, model: String, revoked: Bool)] = []
        for start in stride(from: 0, to: ids.count, by: CommandRepository.inChunk) {
            let part = ids[start..<min(ids.count, start + CommandRepository.inChunk)].map { BSON.string($0) }
            out += try await collection.find(["_id": ["$in": .array(part)]], projection: ["_id": 1, "model": 1, "revoked": 1]).compactMap { d in
                d["_id"]?.stringValue.map { ($0, d["model"]?.stringValue ?? "", d["revoked"]?.boolValue ?? false) }
            }
        }
        return out
    }
}
