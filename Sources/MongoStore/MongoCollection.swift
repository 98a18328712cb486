import CMongoC
import Foundation

/// The result of an unordered ``MongoCollection/insertMany(_:)``.
public struct InsertManyResult: Sendable, Equatable {
    /// Documents the server stored.
    public var insertedCount: Int
    /// Documents refused because a unique index already holds their key (e.g. a resent message).
    public var duplicateCount: Int
    /// Positions (in the input) of the refused duplicates.
    public var duplicateIndexes: [Int] = []
}

/// The result of an update.
public struct UpdateResult: Sendable, Equatable {
    public var matchedCount: Int
    public var modifiedCount: Int
    public var upsertedCount: Int
}

/// One write in a ``MongoCollection/bulkWrite(_:)``.
public enum WriteModel: Sendable {
    case insertOne(Document)
    case updateOne(filter: Document, update: Document, upsert: Bool)
    case updateMany(filter: Document, update: Document, upsert: Bool)
    case deleteOne(filter: Document)
}

/// The result of a bulk write.
public struct BulkWriteResult: Sendable, Equatable {
    public var insertedCount: Int
    public var matchedCount: Int
    public var modifiedCount: Int
    public var upsertedCount: Int
    public var deletedCount: Int
    public var duplicateCount: Int
    /// Positions (in the input) of the writes refused as duplicates.
    public var duplicateIndexes: [Int] = []
}

/// An index to create with ``MongoCollection/createIndexes(_:)``.
public struct IndexModel: Sendable {
    public var name: String
    public var keys: Document
    public var unique: Bool
    /// Documents expire this many seconds after the date in the (single) indexed field.
    public var expireAfterSeconds: Int?
    public var partialFilter: Document?

    public init(name: String, keys: Document, unique: Bool = false, expireAfterSeconds: Int? = nil, partialFilter: Document? = nil) {
        self.name = name
        self.keys = keys
        self.unique = unique
        self.expireAfterSeconds = expireAfterSeconds
        self.partialFilter = partialFilter
    }
}

/// A collection handle. Cheap to create; holds no C resources.
public struct MongoCollection: Sendable {
    let store: MongoStore
    /// The collection name.
    public let name: String
    /// Calls run on the store's priority thread pool.
    public let priority: Bool

    private func run<T: Sendable>(_ op: String, _ body: @escaping @Sendable (OpaquePointer, UnsafeMutablePointer<bson_error_t>) throws -> T) async throws -> T {
        let db = store.databaseName, name = self.name
        return try await store.withClient(operation: op, collection: name, priority: priority) { client in
            let coll = mongoc_client_get_collection(client, db, name)!
            defer { mongoc_collection_destroy(coll) }
            let err = argus_error_new()!
            defer { argus_error_free(err) }
            return try body(coll, err)
        }
    }

    private func fail(_ err: UnsafeMutablePointer<bson_error_t>, _ op: String) -> MongoStoreError {
        MongoStoreError.from(err, operation: op, collection: name)
    }

    /// Inserts `documents` unordered in one round trip. Documents whose key a unique index
    /// already holds are counted in `duplicateCount`, not thrown, so resending is harmless.
    /// Any other write error throws.
    public func insertMany(_ documents: [Document]) async throws -> InsertManyResult {
        guard !documents.isEmpty else { return InsertManyResult(insertedCount: 0, duplicateCount: 0) }
        let r = try await bulkWrite(documents.map { .insertOne($0) }, operation: "insertMany")
        return InsertManyResult(insertedCount: r.insertedCount, duplicateCount: r.duplicateCount, duplicateIndexes: r.duplicateIndexes)
    }

    /// Inserts one document.
    public func insertOne(_ document: Document) async throws {
        try await run("insertOne") { coll, err in
            let ok = document.withBSON { d in mongoc_collection_insert_one(coll, d, nil, nil, err) }
            if !ok { throw self.fail(err, "insertOne") }
        }
    }

    /// Runs `writes` as one unordered bulk write. Duplicate-key errors are counted; other
    /// write errors throw after the rest of the batch has been applied.
    public func bulkWrite(_ writes: [WriteModel], operation: String = "bulkWrite") async throws -> BulkWriteResult {
        guard !writes.isEmpty else {
            return BulkWriteResult(insertedCount: 0, matchedCount: 0, modifiedCount: 0, upsertedCount: 0, deletedCount: 0, duplicateCount: 0)
        }
        return try await run(operation) { coll, err in
            let opts: Document = ["ordered": false]
            let bulk = opts.withBSON { o in mongoc_collection_create_bulk_operation_with_opts(coll, o) }!
            defer { mongoc_bulk_operation_destroy(bulk) }
            for w in writes {
                var ok = true
                switch w {
                case .insertOne(let d):
                    ok = d.withBSON { mongoc_bulk_operation_insert_with_opts(bulk, $0, nil, err) }
                case .updateOne(let f, let u, let upsert):
                    let o: Document = ["upsert": .bool(upsert)]
                    ok = f.withBSON { fb in
                        u.withBSON { ub in
                            o.withBSON { ob in
                                mongoc_bulk_operation_update_one_with_opts(bulk, fb, ub, ob, err)
                            }
                        }
                    }
                case .updateMany(let f, let u, let upsert):
                    let o: Document = ["upsert": .bool(upsert)]
                    ok = f.withBSON { fb in
                        u.withBSON { ub in
                            o.withBSON { ob in
                                mongoc_bulk_operation_update_many_with_opts(bulk, fb, ub, ob, err)
                            }
                        }
                    }
                case .deleteOne(let f):
                    ok = f.withBSON { mongoc_bulk_operation_remove_one_with_opts(bulk, $0, nil, err) }
                }
                if !ok { throw self.fail(err, operation) }
            }
            let reply = bson_new()!
            defer { bson_destroy(reply) }
            let ok = mongoc_bulk_operation_execute(bulk, reply, err) != 0
            let r = Document(copying: reply)
            let writeErrors = r["writeErrors"]?.arrayValue ?? []
            let dupeIndexes = writeErrors.compactMap { e -> Int? in
                guard let d = e.documentValue, d["code"]?.intValue == 11000 else { return nil }
                return d["index"]?.intValue
            }.sorted()
            let dupes = dupeIndexes.count
            if !ok && (writeErrors.isEmpty || dupes != writeErrors.count) {
                throw self.fail(err, operation)
            }
            return BulkWriteResult(
                insertedCount: r["nInserted"]?.intValue ?? 0, matchedCount: r["nMatched"]?.intValue ?? 0,
                modifiedCount: r["nModified"]?.intValue ?? 0, upsertedCount: r["nUpserted"]?.intValue ?? 0,
                deletedCount: r["nRemoved"]?.intValue ?? 0, duplicateCount: dupes, duplicateIndexes: dupeIndexes)
        }
    }

    /// Finds documents matching `filter`.
    public func find(
        _ filter: Document = [:], sort: Document? = nil, limit: Int? = nil, skip: Int? = nil,
        projection: Document? = nil
    ) async throws -> [Document] {
        var opts = Document()
        if let sort { opts["sort"] = .document(sort) }
        if let limit { opts["limit"] = .int(limit) }
        if let skip { opts["skip"] = .int(skip) }
        if let projection { opts["projection"] = .document(projection) }
        let findOpts = opts
        return try await run("find") { coll, err in
            let cursor = filter.withBSON { f in findOpts.withBSON { o in mongoc_collection_find_with_opts(coll, f, o, nil) } }!
            defer { mongoc_cursor_destroy(cursor) }
            return try Self.drain(cursor, err) { self.fail($0, "find") }
        }
    }

    /// The first document matching `filter`, or nil.
    public func findOne(_ filter: Document, sort: Document? = nil, projection: Document? = nil) async throws -> Document? {
        try await find(filter, sort: sort, limit: 1, projection: projection).first
    }

    /// Runs an aggregation pipeline.
    public func aggregate(_ pipeline: [Document]) async throws -> [Document] {
        let p: Document = ["pipeline": .array(pipeline.map { .document($0) })]
        return try await run("aggregate") { coll, err in
            let cursor = p.withBSON { mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE, $0, nil, nil) }!
            defer { mongoc_cursor_destroy(cursor) }
            return try Self.drain(cursor, err) { self.fail($0, "aggregate") }
        }
    }

    private static func drain(
        _ cursor: OpaquePointer, _ err: UnsafeMutablePointer<bson_error_t>, _ fail: (UnsafeMutablePointer<bson_error_t>) -> MongoStoreError
    ) throws -> [Document] {
        var out: [Document] = []
        var doc: OpaquePointer? = nil
        while mongoc_cursor_next(cursor, &doc) {
            if let doc { out.append(Document(copying: doc)) }
        }
        if mongoc_cursor_error(cursor, err) { throw fail(err) }
        return out
    }

    /// Updates the first document matching `filter` (`$set`, `$inc`, ...), inserting one if `upsert`.
    public func updateOne(_ filter: Document, _ update: Document, upsert: Bool = false) async throws -> UpdateResult {
        try await self.update(filter, update, upsert: upsert, many: false)
    }

    /// Updates every document matching `filter`.
    public func updateMany(_ filter: Document, _ update: Document, upsert: Bool = false) async throws -> UpdateResult {
        try await self.update(filter, update, upsert: upsert, many: true)
    }

    private func update(_ filter: Document, _ update: Document, upsert: Bool, many: Bool) async throws -> UpdateResult {
        let op = many ? "updateMany" : "updateOne"
        let opts: Document = ["upsert": .bool(upsert)]
        return try await run(op) { coll, err in
            let reply = bson_new()!
            defer { bson_destroy(reply) }
            let ok = filter.withBSON { f in
                update.withBSON { u in
                    opts.withBSON { o in
                        many
                            ? mongoc_collection_update_many(coll, f, u, o, reply, err)
                            : mongoc_collection_update_one(coll, f, u, o, reply, err)
                    }
                }
            }
            if !ok { throw self.fail(err, op) }
            let r = Document(copying: reply)
            return UpdateResult(
                matchedCount: r["matchedCount"]?.intValue ?? 0,
                modifiedCount: r["modifiedCount"]?.intValue ?? 0,
                upsertedCount: r["upsertedCount"]?.intValue ?? (r["upsertedId"] == nil ? 0 : 1))
        }
    }

    /// Atomically updates one document and returns it, after the update when `returnNew`.
    public func findOneAndUpdate(
        _ filter: Document, _ update: Document, sort: Document? = nil, upsert: Bool = false,
        returnNew: Bool = true, projection: Document? = nil
    ) async throws -> Document? {
        var cmd: Document = [
            "findAndModify": .string(name), "query": .document(filter), "update": .document(update),
            "new": .bool(returnNew), "upsert": .bool(upsert),
        ]
        if let sort { cmd["sort"] = .document(sort) }
        if let projection { cmd["fields"] = .document(projection) }
        let reply = try await store.runCommand(cmd, operation: "findOneAndUpdate", collection: name)
        if case .document(let d)? = reply["value"] { return d }
        return nil
    }

    /// Deletes the first document matching `filter`; returns how many were deleted.
    @discardableResult
    public func deleteOne(_ filter: Document) async throws -> Int { try await delete(filter, many: false) }

    /// Deletes every document matching `filter`; returns how many were deleted.
    @discardableResult
    public func deleteMany(_ filter: Document) async throws -> Int { try await delete(filter, many: true) }

    private func delete(_ filter: Document, many: Bool) async throws -> Int {
        let op = many ? "deleteMany" : "deleteOne"
        return try await run(op) { coll, err in
            let reply = bson_new()!
            defer { bson_destroy(reply) }
            let ok = filter.withBSON { f in
                many ? mongoc_collection_delete_many(coll, f, nil, reply, err) : mongoc_collection_delete_one(coll, f, nil, reply, err)
            }
            if !ok { throw self.fail(err, op) }
            return Document(copying: reply)["deletedCount"]?.intValue ?? 0
        }
    }

    /// Counts documents matching `filter`.
    public func count(_ filter: Document = [:]) async throws -> Int {
        try await run("count") { coll, err in
            let n = filter.withBSON { f in mongoc_collection_count_documents(coll, f, nil, nil, nil, err) }
            if n < 0 { throw self.fail(err, "count") }
            return Int(n)
        }
    }

    /// Creates indexes with the `createIndexes` command. Existing identical indexes are left alone;
    /// a TTL index that exists with another `expireAfterSeconds` (a retention setting changed) is
    /// given the new one with `collMod`, since `createIndexes` refuses to change an index's options.
    public func createIndexes(_ indexes: [IndexModel]) async throws {
        let specs: [BSON] = indexes.map { ix in
            var d: Document = ["key": .document(ix.keys), "name": .string(ix.name)]
            if ix.unique { d["unique"] = true }
            if let s = ix.expireAfterSeconds { d["expireAfterSeconds"] = .int(s) }
            if let p = ix.partialFilter { d["partialFilterExpression"] = .document(p) }
            return .document(d)
        }
        let command: Document = ["createIndexes": .string(name), "indexes": .array(specs)]
        do {
            _ = try await store.runCommand(command, operation: "createIndexes", collection: name)
        } catch let e as MongoStoreError where Self.indexConflictCodes.contains(e.code) && indexes.contains(where: { $0.expireAfterSeconds != nil }) {
            for ix in indexes {
                guard let seconds = ix.expireAfterSeconds else { continue }
                _ = try await store.runCommand(
                    ["collMod": .string(name), "index": ["name": .string(ix.name), "expireAfterSeconds": .int(seconds)]],
                    operation: "collMod", collection: name)
            }
            _ = try await store.runCommand(command, operation: "createIndexes", collection: name)
        }
    }

    /// IndexOptionsConflict (MongoDB) and IndexKeySpecsConflict (SecantusDB says this one for a
    /// changed `expireAfterSeconds`).
    static let indexConflictCodes: Set<Int> = [85, 86]

    /// Drops the collection; a missing collection is not an error.
    public func drop() async throws {
        do { _ = try await store.runCommand(["drop": .string(name)], operation: "drop", collection: name) } catch let e as MongoStoreError
            where e.code == 26 || e.message.contains("ns not found")
        {}
    }
}
