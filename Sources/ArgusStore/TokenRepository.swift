import ArgusSupport
import Foundation
import Logging
import MongoStore
import NIOConcurrencyHelpers
import Synchronization

/// Recently verified tokens, so an API call does not cost a store round trip. Entries live
/// `ttl` seconds; a revocation on this node removes them at once, on other nodes within `ttl`.
package final class TokenCache: Sendable {
    private let entries = Mutex<[String: (principal: Principal, expires: Date)]>([:])
    package let ttl: TimeInterval
    package static let limit = 10_000

    package init(ttl: TimeInterval = 5) { self.ttl = ttl }

    package func get(_ hash: String, now: Date = Date()) -> Principal? {
        entries.withLock { e in
            guard let hit = e[hash] else { return nil }
            if hit.expires <= now { e[hash] = nil; return nil }
            return hit.principal
        }
    }

    package func put(_ hash: String, _ p: Principal, now: Date = Date()) {
        entries.withLock { e in
            if e.count >= Self.limit { e.removeAll(keepingCapacity: true) }
            e[hash] = (p, now.addingTimeInterval(ttl))
        }
    }

    package func forget(tokenId: String) { entries.withLock { e in e = e.filter { $0.value.principal.tokenId != tokenId } } }
}

/// An API token as listed to admins (never the token itself or its hash).
package struct TokenRecord: Sendable, Codable, Equatable {
    package var id: String
    package var name: String
    package var role: Role
    package var createdAt: Date?
    package var createdBy: String?
    package var revoked: Bool
}

/// A document of `tokens`: keyed by the token's SHA-256 (the token itself is never stored).
package struct TokenDocument: Codable, Sendable, Equatable {
    /// `sha256:` + hex of the token.
    package var hash: String
    /// The public id.
    package var tokenId: String
    package var name: String
    package var role: Role
    package var createdAt: Date?
    package var createdBy: String?
    package var revoked: Bool?
    package var revokedAt: Date?

    package enum CodingKeys: String, CodingKey { case hash = "_id", tokenId, name, role, createdAt, createdBy, revoked, revokedAt }

    package init(
        hash: String, tokenId: String, name: String, role: Role, createdAt: Date? = nil, createdBy: String? = nil, revoked: Bool? = nil,
        revokedAt: Date? = nil
    ) {
        self.hash = hash; self.tokenId = tokenId; self.name = name; self.role = role; self.createdAt = createdAt
        self.createdBy = createdBy; self.revoked = revoked; self.revokedAt = revokedAt
    }

    /// As listed to admins.
    package var record: TokenRecord {
        TokenRecord(id: tokenId, name: name, role: role, createdAt: createdAt, createdBy: createdBy, revoked: revoked ?? false)
    }
}

/// Operator API tokens in the `tokens` collection, keyed by the token's hash.
package struct TokenRepository: Sendable {
    package let collection: MongoCollection
    package let cache: TokenCache
    package let decodeFailures: DecodeFailures
    package init(store: MongoStore, cacheSeconds: TimeInterval = 5, logger: Logger = Logger(label: "argus.store")) {
        collection = store.collection(Schema.tokens)
        cache = TokenCache(ttl: cacheSeconds)
        decodeFailures = DecodeFailures(collection: Schema.tokens, logger: logger)
    }

    /// Stores a new token's hash and returns the token, which is shown once.
    package func create(name: String, role: Role, createdBy: String, now: Date) async throws -> (token: String, record: TokenRecord) {
        let token = Secrets.generate(prefix: "argus_")
        let id = Secrets.randomHex(bytes: 8)
        let stored = TokenDocument(
            hash: Secrets.hash(token), tokenId: id, name: name, role: role, createdAt: now, createdBy: createdBy, revoked: false)
        try await collection.insertOne(try BSONEncoder().encode(stored))
        return (token, stored.record)
    }

    /// The principal a presented token stands for, or nil if unknown or revoked. A stored
    /// token that does not decode authenticates no one (counted and logged).
    package func authenticate(_ token: String) async throws -> Principal? {
        let h = Secrets.hash(token)
        if let p = cache.get(h) { return p }
        guard let d = try await collection.findOne(["_id": .string(h)]),
            let t = try? decodeFailures.decode(d, as: TokenDocument.self),
            Secrets.constantTimeEquals(Array(t.hash.utf8), Array(h.utf8)), t.revoked != true
        else { return nil }
        let p = Principal(tokenId: t.tokenId, name: t.name, role: t.role)
        cache.put(h, p)
        return p
    }

    /// Oldest first; a token whose document does not decode is left out (counted and logged).
    package func list() async throws -> [TokenRecord] {
        decodeFailures.decodeEach(try await collection.find([:], sort: ["createdAt": 1], limit: 1000), as: TokenDocument.self).map(\.record)
    }

    /// Revokes by public id; idempotent. Returns false if no such token.
    package func revoke(id: String, now: Date) async throws -> Bool {
        defer { cache.forget(tokenId: id) }
        return try await collection.updateOne(["tokenId": .string(id)], ["$set": ["revoked": true, "revokedAt": .date(now)]]).matchedCount == 1
    }
}
