import ArgusStore
import Foundation
import Logging
import MongoStore

/// The test store is not configured: tests that need it run through `scripts/test`.
public struct NoTestStore: Error, CustomStringConvertible {
    public var description: String { "MONGODB_URI is not set: run through scripts/test" }
}

/// Runs `body` against a fresh database of the store `MONGODB_URI` names (SecantusDB under
/// `scripts/test`), with the hub's indexes, and drops it afterwards, also when `body` throws.
public func withTestStore(_ prefix: String, _ body: (MongoStore) async throws -> Void) async throws {
    guard let uri = ProcessInfo.processInfo.environment["MONGODB_URI"] else { throw NoTestStore() }
    let db = prefix + "_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
    let store = try MongoStore(uri: uri, database: db, threads: 2, logger: Logger(label: "t"))
    try await Schema.ensureIndexes(store)
    do { try await body(store) } catch {
        try? await store.dropDatabase()
        await store.shutdown()
        throw error
    }
    try await store.dropDatabase()
    await store.shutdown()
}
