import ArgusSupport
import Foundation
import Logging
import MongoStore

/// A document of `devices` (a registered box), without its `secretHash`, which is never read
/// back. The operator API shows it as its own view (HubAPI `DeviceView`).
package struct DeviceRecord: Sendable, Codable, Equatable {
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

    package init(
        id: String, model: String, tags: [String], firmware: String? = nil, online: Bool = false, revoked: Bool = false,
        node: String? = nil, session: String? = nil, connectedAt: Date? = nil, lastSeen: Date? = nil,
        remoteAddress: String? = nil, bootId: String? = nil, createdAt: Date? = nil
    ) {
        self.id = id; self.model = model; self.tags = tags; self.firmware = firmware; self.online = online
        self.revoked = revoked; self.node = node; self.session = session; self.connectedAt = connectedAt
        self.lastSeen = lastSeen; self.remoteAddress = remoteAddress; self.bootId = bootId; self.createdAt = createdAt
    }

    package enum CodingKeys: String, CodingKey {
        case id = "_id", model, tags, firmware, online, revoked, node, session, connectedAt, lastSeen, remoteAddress, bootId, createdAt
    }

    /// `tags`, `online` and `revoked` read as empty and false when absent; every other
    /// required field must be there with its type.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id), model: try c.decode(String.self, forKey: .model),
            tags: try c.decodeIfPresent([String].self, forKey: .tags) ?? [],
            firmware: try c.decodeIfPresent(String.self, forKey: .firmware), online: try c.decodeIfPresent(Bool.self, forKey: .online) ?? false,
            revoked: try c.decodeIfPresent(Bool.self, forKey: .revoked) ?? false, node: try c.decodeIfPresent(String.self, forKey: .node),
            session: try c.decodeIfPresent(String.self, forKey: .session), connectedAt: try c.decodeIfPresent(Date.self, forKey: .connectedAt),
            lastSeen: try c.decodeIfPresent(Date.self, forKey: .lastSeen), remoteAddress: try c.decodeIfPresent(String.self, forKey: .remoteAddress),
            bootId: try c.decodeIfPresent(String.self, forKey: .bootId), createdAt: try c.decodeIfPresent(Date.self, forKey: .createdAt))
    }
}

/// A box to register, its secret already hashed.
package struct NewDevice: Sendable, Equatable {
    package var id: String
    package var model: String
    package var tags: [String]
    package var secretHash: String

    package init(id: String, model: String, tags: [String], secretHash: String) {
        self.id = id
        self.model = model
        self.tags = tags
        self.secretHash = secretHash
    }
}

/// Filters for listing devices. Every combination is served by an index on its first field.
package struct DeviceFilter: Sendable, Equatable {
    package var online: Bool?
    package var model: String?
    package var firmware: String?
    package var tag: String?

    package init(online: Bool? = nil, model: String? = nil, firmware: String? = nil, tag: String? = nil) {
        self.online = online
        self.model = model
        self.firmware = firmware
        self.tag = tag
    }

    /// Whether a node can tell from its sessions' hello which connected boxes match: model
    /// and firmware, online only as true (tags live in the store). Fleet jobs need this.
    package var answerableBySessions: Bool { tag == nil && online != false }
}

/// Registered boxes in the `devices` collection.
package struct DeviceRepository: Sendable {
    package let collection: MongoCollection
    /// Never returned to a caller.
    package static let hiddenFields: Document = ["secretHash": 0]

    package let revocations: MongoCollection
    package let decodeFailures: DecodeFailures
    package let revocationFailures: DecodeFailures

    package init(store: MongoStore, logger: Logger = Logger(label: "argus.store")) {
        collection = store.collection(Schema.devices)
        revocations = store.collection(Schema.revocations)
        decodeFailures = DecodeFailures(collection: Schema.devices, logger: logger)
        revocationFailures = DecodeFailures(collection: Schema.revocations, logger: logger)
    }

    /// The stored document of a newly registered box.
    package static func document(_ d: NewDevice, now: Date) -> Document {
        [
            "_id": .string(d.id), "model": .string(d.model), "tags": .array(d.tags.map { .string($0) }),
            "secretHash": .string(d.secretHash), "online": false, "revoked": false, "createdAt": .date(now),
        ]
    }

    /// Registers a box. Throws `duplicateKey` if the id exists.
    package func register(id: String, model: String, tags: [String], secretHash: String, now: Date) async throws -> DeviceRecord {
        try await collection.insertOne(Self.document(NewDevice(id: id, model: model, tags: tags, secretHash: secretHash), now: now))
        return DeviceRecord(id: id, model: model, tags: tags, createdAt: now)
    }

    /// Registers `boxes` (distinct ids) with one unordered insertMany. Returns the positions
    /// in `boxes` of those whose id was already registered (not stored); every other box is
    /// stored. A store failure throws, and then some of the boxes may have been stored.
    package func registerMany(_ boxes: [NewDevice], now: Date) async throws -> [Int] {
        try await collection.insertMany(boxes.map { Self.document($0, now: now) }).duplicateIndexes
    }

    package func get(_ id: String) async throws -> DeviceRecord? {
        try await collection.findOne(["_id": .string(id)], projection: Self.hiddenFields).map { d throws(BSONDecodingError) in
            try decodeFailures.decode(d, as: DeviceRecord.self)
        }
    }

    /// One page, ordered by id, starting after `cursor`. A box whose document does not decode
    /// is left out (counted and logged); the cursor still moves past it.
    package func list(_ f: DeviceFilter, after cursor: String?, limit: Int) async throws -> (items: [DeviceRecord], next: String?) {
        var q = Document()
        if let o = f.online { q["online"] = .bool(o) }
        if let m = f.model { q["model"] = .string(m) }
        if let fw = f.firmware { q["firmware"] = .string(fw) }
        if let t = f.tag { q["tags"] = .string(t) }
        if let cursor { q["_id"] = ["$gt": .string(cursor)] }
        let docs = try await collection.find(q, sort: ["_id": 1], limit: limit + 1, projection: Self.hiddenFields)
        let page = Array(docs.prefix(limit))
        return (decodeFailures.decodeEach(page, as: DeviceRecord.self), docs.count > limit ? page.last?["_id"]?.stringValue : nil)
    }

    /// How the console's device list may be ordered: a field, ascending or descending.
    package enum ListSort: String, Sendable, CaseIterable {
        case id, idDesc = "-id", lastSeen, lastSeenDesc = "-lastSeen", model, firmware
        var document: Document {
            switch self {
            case .id: ["_id": 1]
            case .idDesc: ["_id": -1]
            case .lastSeen: ["lastSeen": 1, "_id": 1]
            case .lastSeenDesc: ["lastSeen": -1, "_id": 1]
            case .model: ["model": 1, "_id": 1]
            case .firmware: ["firmware": 1, "_id": 1]
            }
        }
    }

    /// The query of a filter, with an optional free search: `search` is a prefix of the id
    /// (which is the box's serial) or of its last remote address.
    package static func query(_ f: DeviceFilter, search: String?) -> Document {
        var q = Document()
        if let o = f.online { q["online"] = .bool(o) }
        if let m = f.model { q["model"] = .string(m) }
        if let fw = f.firmware { q["firmware"] = .string(fw) }
        if let t = f.tag { q["tags"] = .string(t) }
        if let search, !search.isEmpty {
            func prefix(_ field: String) -> Document { [field: ["$gte": .string(search), "$lt": .string(search + "\u{10FFFF}")]] }
            q["$or"] = .array([.document(prefix("_id")), .document(prefix("remoteAddress"))])
        }
        return q
    }

    /// One page of the console's list: filtered, searched, sorted, `skip` boxes in.
    /// Returns the boxes and whether more follow.
    package func page(_ f: DeviceFilter, search: String?, sort: ListSort, skip: Int, limit: Int) async throws -> (items: [DeviceRecord], more: Bool) {
        let docs = try await collection.find(
            Self.query(f, search: search), sort: sort.document, limit: limit + 1, skip: skip > 0 ? skip : nil, projection: Self.hiddenFields)
        let page = Array(docs.prefix(limit))
        return (decodeFailures.decodeEach(page, as: DeviceRecord.self), docs.count > limit)
    }

    /// How many boxes a filter (and search) matches.
    package func count(_ f: DeviceFilter, search: String?) async throws -> Int {
        try await collection.count(Self.query(f, search: search))
    }

    /// Adds and removes tags on the boxes `ids` (or, with nil, every box the filter matches);
    /// returns how many matched. Removal and addition are two updates (one update may not
    /// touch `tags` twice); ids go in chunks of 200 (`$in` is quadratic in the store).
    package func retag(ids: [String]?, filter: DeviceFilter, add: [String], remove: [String]) async throws -> Int {
        var updates: [Document] = []
        if !remove.isEmpty { updates.append(["$pull": ["tags": ["$in": .array(remove.map { .string($0) })]]]) }
        if !add.isEmpty { updates.append(["$addToSet": ["tags": ["$each": .array(add.map { .string($0) })]]]) }
        let selections: [Document]
        if let ids {
            selections = stride(from: 0, to: ids.count, by: 200).map { start in
                ["_id": ["$in": .array(ids[start..<min(start + 200, ids.count)].map { .string($0) })]]
            }
        } else {
            selections = [Self.query(filter, search: nil)]
        }
        var matched = 0
        for selection in selections {
            var most = 0
            for update in updates { most = max(most, try await collection.updateMany(selection, update).matchedCount) }
            matched += most
        }
        return matched
    }

    /// What the gateway reads of a box: its credentials.
    private struct Credentials: Decodable {
        var secretHash: String?
        var revoked: Bool?
    }

    /// A box as a target: id, model, revoked.
    private struct Ref: Decodable {
        var id: String
        var model: String
        var revoked: Bool?
        enum CodingKeys: String, CodingKey { case id = "_id", model, revoked }
    }

    /// A document of `revocations`.
    private struct Revocation: Decodable {
        var device: String
        var at: Date
    }

    /// The stored secret hash, unless the box is revoked or unknown. A box whose document
    /// does not decode has none (counted and logged).
    package func credentials(_ id: String) async throws -> String? {
        guard let d = try await collection.findOne(["_id": .string(id)], projection: ["secretHash": 1, "revoked": 1]),
            let c = try? decodeFailures.decode(d, as: Credentials.self), c.revoked != true
        else { return nil }
        return c.secretHash
    }

    /// Revokes a box's credentials. Returns false if it does not exist.
    package func revoke(_ id: String, now: Date) async throws -> Bool {
        let r = try await collection.updateOne(
            ["_id": .string(id)],
            ["$set": ["revoked": true, "revokedAt": .date(now)], "$unset": ["secretHash": ""]])
        guard r.matchedCount == 1 else { return false }
        // Tells every node (their credential caches and live sessions): see RevocationFeed.
        _ = try await revocations.insertMany([["_id": .string("\(id)|\(now.millis)"), "device": .string(id), "at": .date(now)]])
        return true
    }

    /// Revocations recorded since `since`, oldest first: (device, at).
    package func revocations(since: Date, limit: Int = 1000) async throws -> [(device: String, at: Date)] {
        revocationFailures.decodeEach(try await revocations.find(["at": ["$gt": .date(since)]], sort: ["at": 1], limit: limit), as: Revocation.self)
            .map { ($0.device, $0.at) }
    }

    /// The non-revoked boxes matching `filter` (all boxes for an empty filter), as (id, model),
    /// at most `limit`. (Here and in ``lookup(_:)`` a box whose document does not decode is
    /// left out, counted and logged.)
    package func resolve(_ f: DeviceFilter, limit: Int) async throws -> [(id: String, model: String)] {
        var q: Document = ["revoked": ["$ne": true]]
        if let o = f.online { q["online"] = .bool(o) }
        if let m = f.model { q["model"] = .string(m) }
        if let fw = f.firmware { q["firmware"] = .string(fw) }
        if let t = f.tag { q["tags"] = .string(t) }
        let docs = try await collection.find(q, limit: limit, projection: ["_id": 1, "model": 1, "revoked": 1])
        return decodeFailures.decodeEach(docs, as: Ref.self).map { ($0.id, $0.model) }
    }

    /// The given boxes as (id, model, revoked); unknown ids are left out.
    package func lookup(_ ids: [String]) async throws -> [(id: String, model: String, revoked: Bool)] {
        var out: [(id: String, model: String, revoked: Bool)] = []
        for start in stride(from: 0, to: ids.count, by: CommandRepository.inChunk) {
            let part = ids[start..<min(ids.count, start + CommandRepository.inChunk)].map { BSON.string($0) }
            let docs = try await collection.find(["_id": ["$in": .array(part)]], projection: ["_id": 1, "model": 1, "revoked": 1])
            out += decodeFailures.decodeEach(docs, as: Ref.self).map { ($0.id, $0.model, $0.revoked ?? false) }
        }
        return out
    }
}
