import Foundation
import MongoStore

/// A lease kept in one document of a collection (`_id` = `id`: `node`, `until`), so that exactly
/// one node does a periodic job (the ratings builder, the recommendation trainer). Taken when
/// free or expired, renewed by its holder, released at shutdown.
package struct StoreLease: Sendable {
    let collection: MongoCollection
    let id: String

    package init(_ collection: MongoCollection, id: String) {
        self.collection = collection
        self.id = id
    }

    /// Takes or renews the lease; false when another node holds it.
    package func acquire(node: String, now: Date, ttl: TimeInterval) async -> Bool {
        do {
            let d = try await collection.findOneAndUpdate(
                ["_id": .string(id), "$or": [["until": ["$lt": .date(now)]], ["node": .string(node)]]],
                ["$set": ["node": .string(node), "until": .date(now.addingTimeInterval(ttl))]], upsert: true)
            return d?["node"]?.stringValue == node
        } catch {
            return false  // another node's lease (the upsert hit the unique _id), or the store is down
        }
    }

    /// Lets another node take the lease at once.
    package func release(node: String) async {
        _ = try? await collection.updateOne(["_id": .string(id), "node": .string(node)], ["$set": ["until": .date(Date(timeIntervalSince1970: 0))]])
    }
}
