import Foundation
import Logging
import Testing

@testable import MongoStore

@Suite("MongoStore shutdown against the database")
struct MongoStoreShutdownTests {
    /// A change stream's thread holds a client while it waits in the server; destroying the
    /// client pool under it was a use-after-free in libmongoc (a hub that took long to exit
    /// after SIGTERM crashed with SIGSEGV in mongoc_change_stream_next).
    @Test func shutdownStopsChangeStreamsAndWaitsForTheirClientsBeforeDestroyingThePool() async throws {
        guard let uri = ProcessInfo.processInfo.environment["MONGODB_URI"] else {
            Issue.record("MONGODB_URI is not set: run the suite through scripts/test, which starts a store")
            return
        }
        let db = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let store = try MongoStore(uri: uri, database: db, threads: 2, logger: Logger(label: "test"))
        try await store.collection("watched").insertOne(["_id": 1])
        let stream = store.collection("watched").watch([], options: WatchOptions(maxAwaitMilliseconds: 1000))
        let consumer = Task { () -> Int in
            var n = 0
            for try await _ in stream { n += 1 }
            return n
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while store.watches.clientsOut == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(store.watches.clientsOut == 1, "the stream's thread holds a client")

        await store.shutdown()
        #expect(store.watches.clientsOut == 0, "shutdown returned while a stream thread still held a client")
        #expect(try await consumer.value == 0, "the stream ends")
        // A stream opened after shutdown fails at once instead of using the destroyed pool.
        var failed = false
        do { for try await _ in store.collection("watched").watch() {} } catch let e as MongoStoreError { failed = e.kind == .shutdown }
        #expect(failed)

        let cleanup = try MongoStore(uri: uri, database: db, threads: 1, logger: Logger(label: "test"))
        try? await cleanup.dropDatabase()
        await cleanup.shutdown()
    }
}
