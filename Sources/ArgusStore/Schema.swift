import ArgusSupport
import MongoStore

/// Collection names and the indexes every query needs. See docs/storage.md.
package enum Schema {
    package static let devices = "devices"
    package static let tokens = "tokens"
    package static let audit = "audit"
    package static let meta = "meta"
    package static let events = "events"
    package static let logs = "logs"
    package static let metrics = "metrics"
    package static let audience = "audience"
    package static let alarms = "alarms"
    package static let jobs = "jobs"
    package static let executions = "executions"
    package static let firmware = "firmware"
    /// Images uploaded before generations (read only, removed by the next upload).
    package static let firmwareChunks = "firmware_chunks"
    /// Image chunks, one set per upload generation; the catalogue names the verified one.
    package static let firmwareImageChunks = "firmware_image_chunks"
    package static let rollouts = "rollouts"
    /// One document per device revocation, read by every node's ``RevocationFeed``; kept a
    /// day (far past any credential cache entry).
    package static let revocations = "revocations"

    /// Creates every index the hub's queries use. Idempotent.
    package static func ensureIndexes(_ store: MongoStore, retention: RetentionConfiguration = .init()) async throws {
        let day = 86_400
        try await store.collection(events).createIndexes([
            IndexModel(name: "d_t", keys: ["d": 1, "t": -1]),
            IndexModel(name: "ch_t", keys: ["ch": 1, "t": 1]),
            IndexModel(name: "ttl_r", keys: ["r": 1], expireAfterSeconds: retention.eventsDays * day),
        ])
        try await store.collection(logs).createIndexes([
            IndexModel(name: "d_t", keys: ["d": 1, "t": -1]),
            IndexModel(name: "ttl_r", keys: ["r": 1], expireAfterSeconds: retention.logsDays * day),
        ])
        try await store.collection(metrics).createIndexes([
            IndexModel(name: "d_h", keys: ["d": 1, "h": 1]),
            IndexModel(name: "ttl_h", keys: ["h": 1], expireAfterSeconds: retention.metricsDays * day),
        ])
        try await store.collection(alarms).createIndexes([
            IndexModel(name: "active_key", keys: ["key": 1], unique: true, partialFilter: ["active": true]),
            IndexModel(name: "state_raisedAt", keys: ["state": 1, "raisedAt": -1]),
            IndexModel(name: "raisedAt", keys: ["raisedAt": -1]),
            IndexModel(name: "rule_active", keys: ["rule": 1, "active": 1]),
        ])
        try await store.collection(devices).createIndexes([
            IndexModel(name: "online_lastSeen", keys: ["online": 1, "lastSeen": 1]),
            // The console's search by address (a prefix) and its sort by last seen.
            IndexModel(name: "remoteAddress", keys: ["remoteAddress": 1]),
            IndexModel(name: "lastSeen_id", keys: ["lastSeen": 1, "_id": 1]),
        ])
        try await store.collection(audience).createIndexes([
            IndexModel(name: "ch_m", keys: ["ch": 1, "m": 1]),
            IndexModel(name: "m", keys: ["m": 1]),
            IndexModel(name: "ttl_m", keys: ["m": 1], expireAfterSeconds: retention.audienceDays * day),
        ])
        try await store.collection(devices).createIndexes([
            IndexModel(name: "online_id", keys: ["online": 1, "_id": 1]),
            IndexModel(name: "model_id", keys: ["model": 1, "_id": 1]),
            IndexModel(name: "firmware_id", keys: ["firmware": 1, "_id": 1]),
            IndexModel(name: "tags_id", keys: ["tags": 1, "_id": 1]),
            IndexModel(name: "node_online", keys: ["node": 1, "online": 1]),
        ])
        try await store.collection(jobs).createIndexes([
            IndexModel(name: "updatedAt", keys: ["updatedAt": 1]),
            IndexModel(name: "materialized_createdAt", keys: ["materialized": 1, "createdAt": 1]),
            IndexModel(name: "rollout", keys: ["rollout": 1]),
        ])
        try await store.collection(executions).createIndexes([
            IndexModel(name: "device_state", keys: ["device": 1, "state": 1]),
            IndexModel(name: "job_state", keys: ["job": 1, "state": 1]),
            IndexModel(name: "job_id", keys: ["job": 1, "_id": 1]),
            IndexModel(name: "state_deadline", keys: ["state": 1, "deadline": 1]),
            IndexModel(name: "state_updatedAt", keys: ["state": 1, "updatedAt": 1]),
        ])
        try await store.collection(revocations).createIndexes([
            IndexModel(name: "ttl_at", keys: ["at": 1], expireAfterSeconds: day)
        ])
        try await store.collection(rollouts).createIndexes([
            IndexModel(name: "state", keys: ["state": 1])
        ])
        try await store.collection(executions).createIndexes([
            IndexModel(name: "job_state_finishedAt", keys: ["job": 1, "state": 1, "finishedAt": -1])
        ])
        try await store.collection(firmwareChunks).createIndexes([
            IndexModel(name: "fw_n", keys: ["fw": 1, "n": 1], unique: true)
        ])
        try await store.collection(firmwareImageChunks).createIndexes([
            IndexModel(name: "fw_gen_n", keys: ["fw": 1, "gen": 1, "n": 1], unique: true)
        ])
        try await store.collection(tokens).createIndexes([
            IndexModel(name: "tokenId", keys: ["tokenId": 1], unique: true)
        ])
        try await store.collection(audit).createIndexes([
            IndexModel(name: "at", keys: ["at": -1]),
            IndexModel(name: "actor_at", keys: ["actor": 1, "at": -1]),
            IndexModel(name: "action_at", keys: ["action": 1, "at": -1]),
        ])
    }
}
