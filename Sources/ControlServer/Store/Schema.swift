import MongoStore

/// Collection names and the indexes every query needs. See docs/storage.md.
enum Schema {
    static let devices = "devices"
    static let tokens = "tokens"
    static let audit = "audit"
    static let meta = "meta"

    /// Creates every index the hub's queries use. Idempotent.
    static func ensureIndexes(_ store: MongoStore) async throws {
        try await store.collection(devices).createIndexes([
            IndexModel(name: "online_id", keys: ["online": 1, "_id": 1]),
            IndexModel(name: "model_id", keys: ["model": 1, "_id": 1]),
            IndexModel(name: "firmware_id", keys: ["firmware": 1, "_id": 1]),
            IndexModel(name: "tags_id", keys: ["tags": 1, "_id": 1]),
            IndexModel(name: "node_online", keys: ["node": 1, "online": 1]),
        ])
        try await store.collection(tokens).createIndexes([
            IndexModel(name: "tokenId", keys: ["tokenId": 1], unique: true),
        ])
        try await store.collection(audit).createIndexes([
            IndexModel(name: "at", keys: ["at": -1]),
            IndexModel(name: "actor_at", keys: ["actor": 1, "at": -1]),
            IndexModel(name: "action_at", keys: ["action": 1, "at": -1]),
        ])
    }
}
