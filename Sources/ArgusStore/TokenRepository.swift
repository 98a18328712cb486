import ArgusSupport
import Foundation
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

/// An API token as listed to admins (never the token itself).
package struct TokenRecord: Sendable, Codable, Equatable {
    package var id: String
    package var name: String
    package var role: Role
    package var createdAt: Date?
    package var createdBy: String?
    package var revoked: Bool
}

/// Operator API tokens in the `tokens` collection, keyed by the token's hash.
package struct TokenRepository: Sendable {
    package let collection: MongoCollection
    package let cache: TokenCache
    package init(store: MongoStore, cacheSeconds: TimeInterval = 5) {
        collection = store.collection(Schema.tokens)
        cache = TokenCache(ttl: cacheSeconds)
    }

    /// Stores a new token's hash and returns the token, which is shown once.
    package func create(name: String, role: Role, createdBy: String, now: Date) async throws -> (token: String, record: TokenRecord) {
        let token = Secrets.generate(prefix: "argus_")
        let id = Secrets.randomHex(bytes: 8)
        try await collection.insertOne([
            "_id": .string(Secrets.hash(token)), "tokenId": .string(id), "name": .string(name), "role": .string(role.rawValue),
            "createdAt": .date(now), "createdBy": .string(createdBy), "revoked": false,
        ])
        return (token, TokenRecord(id: id, name: name, role: role, createdAt: now, createdBy: createdBy, revoked: false))
    }

    /// The principal a presented token stands for, or nil if unknown or revoked.
    package func authenticate(_ token: String) async throws -> Principal? {
        let h = Secrets.hash(token)
        if let p = cache.get(h) { return p }
        guard let d = try await collection.findOne(["_id": .string(h)]),
            let stored = d["_id"]?.stringValue, Secrets.constantTimeEquals(Array(stored.utf8), Array(h.utf8)),
            d["revoked"]?.boolValue != true,
            let role = d["role"]?.stringValue.flatMap(Role.init(rawValue:))
        else { return nil }
        let p = Principal(tokenId: d["tokenId"]?.stringValue ?? "", name: d["name"]?.stringValue ?? "", role: role)
        cache.put(h, p)
        return p
    }

    package func list() async throws -> [TokenRecord] {
        try await collection.find([:], sort: ["createdAt": 1], limit: 1000).map { d in
            TokenRecord(
                id: d["tokenId"]?.stringValue ?? "", name: d["name"]?.stringValue ?? "",
                role: d["role"]?.stringValue.flatMap(Role.init(rawValue:)) ?? .analyst,
                createdAt: d["createdAt"]?.dateValue, createdBy: d["createdBy"]?.stringValue,
                revoked: d["revoked"]?.boolValue ?? false)
        }
    }

    /// Revokes by public id; idempotent. Returns false if no such token.
    package func revoke(id: String, now: Date) async throws -> Bool {
        defer { cache.forget(tokenId: id) }
        return try await collection.updateOne(["tokenId": .string(id)], ["$set": ["revoked": true, "revokedAt": .date(now)]]).matchedCount == 1
    }
}
