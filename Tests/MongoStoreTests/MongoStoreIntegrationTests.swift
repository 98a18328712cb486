import Foundation
import Logging
import Testing

@testable import MongoStore

/// A store on its own database, dropped afterwards. Needs the SecantusDB that scripts/test started.
func withTestStore(_ body: (MongoStore) async throws -> Void) async throws {
    guard let uri = ProcessInfo.processInfo.environment["MONGODB_URI"] else {
        Issue.record("MONGODB_URI is not set: run the suite through scripts/test, which starts a store")
        return
    }
    let db = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
    let store = try MongoStore(uri: uri, database: db, threads: 2, logger: Logger(label: "test"))
    do {
        try await body(store)
    } catch {
        try? await store.dropDatabase()
        await store.shutdown()
        throw error
    }
    try? await store.dropDatabase()
    await store.shutdown()
}

@Suite("MongoStore against the database")
struct MongoStoreDatabaseTests {
    @Test func insertFindSortLimitProjection() async throws {
        try await withTestStore { store in
            let c = store.collection("things")
            let r = try await c.insertMany((0..<20).map { i in ["_id": .int(i), "n": .int(i % 5), "name": .string("thing \(i)"), "tags": ["a", "b"]] })
            #expect(r == InsertManyResult(insertedCount: 20, duplicateCount: 0, duplicateIndexes: []))
            let found = try await c.find(["n": 3], sort: ["_id": -1], limit: 3, projection: ["name": 1])
            #expect(found.map { $0["_id"]?.intValue } == [18, 13, 8])
            #expect(found.first?["name"] == "thing 18")
            #expect(found.first?["n"] == nil, "projection keeps only name and _id")
            #expect(try await c.count(["n": ["$gte": 3]]) == 8)
        }
    }

    @Test func duplicatesAreCountedNotThrown() async throws {
        try await withTestStore { store in
            let c = store.collection("msgs")
            _ = try await c.insertMany([["_id": "a"], ["_id": "b"]])
            let r = try await c.insertMany([["_id": "b"], ["_id": "c"], ["_id": "a"]])
            #expect(r.insertedCount == 1)
            #expect(r.duplicateCount == 2)
            #expect(r.duplicateIndexes == [0, 2])
            #expect(try await c.count() == 3)
        }
    }

    @Test func roundTripsEveryValueType() async throws {
        try await withTestStore { store in
            let c = store.collection("types")
            let date = Date(timeIntervalSince1970: 1_700_000_000.123)
            let oid = ObjectID.generate()
            let doc: Document = [
                "_id": .objectID(oid), "d": .double(1.5), "s": "héllo \u{0} zero", "sub": ["x": .int32(7)],
                "arr": [1, "two", .null], "bin": .binary([0, 1, 255]), "t": true, "date": .date(date),
                "i64": .int64(1 << 40), "empty": "",
            ]
            try await c.insertOne(doc)
            let back = try #require(try await c.findOne(["_id": .objectID(oid)]))
            #expect(back == doc)
        }
    }

    @Test func updateUpsertIncAndFindOneAndUpdate() async throws {
        try await withTestStore { store in
            let c = store.collection("counters")
            var r = try await c.updateOne(["_id": "ch1"], ["$inc": ["viewers": 2], "$set": ["name": "One"]], upsert: true)
            #expect(r.upsertedCount == 1)
            r = try await c.updateOne(["_id": "ch1"], ["$inc": ["viewers": 3]])
            #expect(r.matchedCount == 1 && r.modifiedCount == 1)
            let after = try await c.findOneAndUpdate(["_id": "ch1"], ["$inc": ["viewers": 1]], returnNew: true)
            #expect(after?["viewers"]?.intValue == 6)
            let none = try await c.findOneAndUpdate(["_id": "missing"], ["$set": ["x": 1]])
            #expect(none == nil)
            _ = try await c.insertMany([["_id": "a", "g": 1], ["_id": "b", "g": 1]])
            let many = try await c.updateMany(["g": 1], ["$set": ["g": 2]])
            #expect(many.modifiedCount == 2)
            #expect(try await c.deleteMany(["g": 2]) == 2)
            #expect(try await c.deleteOne(["_id": "ch1"]) == 1)
            #expect(try await c.count() == 0)
        }
    }

    @Test func aggregateGroups() async throws {
        try await withTestStore { store in
            let c = store.collection("agg")
            _ = try await c.insertMany((0..<10).map { ["_id": .int($0), "k": .string($0 % 2 == 0 ? "even" : "odd"), "v": .int($0)] })
            let out = try await c.aggregate([["$group": ["_id": "$k", "sum": ["$sum": "$v"]]], ["$sort": ["_id": 1]]])
            #expect(out.map { $0["_id"]?.stringValue } == ["even", "odd"])
            #expect(out.map { $0["sum"]?.intValue } == [20, 25])
        }
    }

    @Test func uniqueIndexAndTypedErrors() async throws {
        try await withTestStore { store in
            let c = store.collection("uniq")
            try await c.createIndexes([
                IndexModel(name: "email_1", keys: ["email": 1], unique: true),
                IndexModel(name: "ttl", keys: ["at": 1], expireAfterSeconds: 3600),
            ])
            try await c.insertOne(["email": "a@x"])
            do {
                try await c.insertOne(["email": "a@x"])
                Issue.record("a duplicate must throw")
            } catch let e as MongoStoreError {
                #expect(e.kind == .duplicateKey)
                #expect(e.operation == "insertOne")
                #expect(e.collection == "uniq")
                #expect(e.description.contains("insertOne on uniq"))
            }
            let ix = try await store.runCommand(["listIndexes": "uniq"])
            let names = ix["cursor"]?.documentValue?["firstBatch"]?.arrayValue?.compactMap { $0.documentValue?["name"]?.stringValue } ?? []
            #expect(Set(names).isSuperset(of: ["email_1", "ttl"]))
        }
    }

    @Test func bulkWriteMixesOperations() async throws {
        try await withTestStore { store in
            let c = store.collection("bulk")
            let r = try await c.bulkWrite([
                .insertOne(["_id": 1, "v": 1]),
                .updateOne(filter: ["_id": 2], update: ["$set": ["v": 2]], upsert: true),
                .updateOne(filter: ["_id": 1], update: ["$inc": ["v": 10]], upsert: false),
                .insertOne(["_id": 1]),
            ])
            #expect(r.insertedCount == 1 && r.upsertedCount == 1 && r.modifiedCount == 1 && r.duplicateCount == 1)
            #expect(try await c.findOne(["_id": 1])?["v"]?.intValue == 11)
        }
    }

    /// The next event of `stream`, or nil if none comes within `limit`: the stream is stopped
    /// then, so a slow or silent stream fails the test instead of hanging it.
    func nextEvent(_ it: inout ChangeStream.Iterator, of stream: ChangeStream, within limit: Duration = .seconds(10)) async throws -> Document? {
        let timer = Task {
            try await Task.sleep(for: limit); stream.stop()
        }
        defer { timer.cancel() }
        return try await it.next()
    }

    /// The next event that is not about a probe document (see below).
    func nextReal(_ it: inout ChangeStream.Iterator, of stream: ChangeStream) async throws -> Document? {
        while let e = try await nextEvent(&it, of: stream) {
            if e["documentKey"]?.documentValue?["_id"]?.stringValue?.hasPrefix("probe-") != true { return e }
        }
        return nil
    }

    @Test func changeStreamDeliversInsertsAndUpdates() async throws {
        try await withTestStore { store in
            let c = store.collection("watched")
            try await c.insertOne(["_id": "seed"])  // the collection must exist on some servers
            let stream = c.watch([["$match": ["operationType": ["$in": ["insert", "update"]]]]])
            var it = stream.makeAsyncIterator()
            // The stream opens on its own thread: write probes until it sees one, so the writes
            // below come after it is open (instead of sleeping and hoping it is).
            let prober = Task {
                var k = 0
                while !Task.isCancelled {
                    try await c.insertOne(["_id": .string("probe-\(k)")])
                    k += 1
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let probe = try await nextEvent(&it, of: stream)
            prober.cancel()
            _ = await prober.result
            try #require(probe != nil, "the change stream delivered nothing within 10 s")
            try await c.insertOne(["_id": "x", "v": 1])
            _ = try await c.updateOne(["_id": "x"], ["$set": ["v": 2]])
            let first = try #require(try await nextReal(&it, of: stream), "no insert event within 10 s")
            #expect(first["operationType"] == "insert")
            #expect(first["fullDocument"]?.documentValue?["_id"] == "x")
            let second = try #require(try await nextReal(&it, of: stream), "no update event within 10 s")
            #expect(second["operationType"] == "update")
            #expect(second["fullDocument"]?.documentValue?["v"]?.intValue == 2)
            stream.stop()
        }
    }

    @Test func unreachableStoreGivesClearError() async throws {
        let store = try MongoStore(uri: "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300&connectTimeoutMS=200", logger: Logger(label: "t"))
        do {
            try await store.ping()
            Issue.record("ping to a closed port must fail")
        } catch let e as MongoStoreError {
            #expect(e.kind == .unreachable)
            #expect(e.operation == "ping")
        }
        await store.shutdown()
    }
}

@Suite("MongoStore without a database")
struct MongoStoreUnitTests {
    @Test func malformedURIIsRejectedWithReason() {
        #expect {
            _ = try MongoStore(uri: "mongodb://host:notaport/", logger: Logger(label: "t"))
        } throws: { error in
            guard let e = error as? MongoStoreError else { return false }
            return e.kind == .invalidURI && e.description.contains("malformed MongoDB URI")
        }
        #expect(throws: MongoStoreError.self) { _ = try MongoStore(uri: "postgres://x", logger: Logger(label: "t")) }
    }

    @Test func databaseNameComesFromURI() throws {
        let s = try MongoStore(uri: "mongodb://127.0.0.1:1/fleet", logger: Logger(label: "t"))
        #expect(s.databaseName == "fleet")
        let d = try MongoStore(uri: "mongodb://127.0.0.1:1/", logger: Logger(label: "t"))
        #expect(d.databaseName == "argus")
    }

    @Test func objectIDHexRoundTrip() throws {
        let id = ObjectID.generate()
        #expect(ObjectID(id.description) == id)
        #expect(ObjectID("zz") == nil)
        #expect(ObjectID("0123456789abcdef0123456g") == nil)
    }

    @Test func documentSubscriptKeepsOrder() {
        var d: Document = ["b": 1, "a": 2]
        d["c"] = 3
        d["b"] = 4
        d["a"] = nil
        #expect(d.keys == ["b", "c"])
        #expect(d["b"]?.intValue == 4)
    }
}
