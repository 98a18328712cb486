import ArgusSupport
import CMongoC
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Synchronization

private let driverLogger = Logger(label: "argus.mongoc")

/// The single gateway to MongoDB.
///
/// It owns a `mongoc_client_pool_t` and a dedicated `NIOThreadPool`. Every libmongoc call is
/// blocking, so each one runs on that thread pool with a client popped from the pool for the
/// duration of the call and pushed back afterwards: never on an event loop, never on the
/// Swift concurrency pool, and never across an `await`. Change streams each get a thread of
/// their own, because they block for long periods.
///
/// Collections opened with `priority: true` run on a second, small thread pool, so a
/// latency-critical write (a command job) never queues in the hub behind a burst of slow bulk
/// writes (telemetry) that holds every thread of the main pool.
public final class MongoStore: Sendable {
    /// The database every collection belongs to.
    public let databaseName: String
    let threadPool: NIOThreadPool
    let priorityPool: NIOThreadPool
    static let priorityThreads = 2
    private let pool: PoolBox
    /// Change streams and the clients their threads hold, so shutdown can wait for them.
    let watches = WatchRegistry()
    /// How long ``shutdown()`` waits for change-stream threads to give their clients back.
    static let watchShutdownTimeout: Duration = .seconds(15)
    let logger: Logger

    /// Whether libmongoc has been initialised in this process (mongoc_init must run once).
    private static let initOnce: Void = {
        mongoc_init()
        // libmongoc logs to stderr by default; route warnings and worse into swift-log and drop the chatter.
        mongoc_log_set_handler(
            { level, domain, message, _ in
                guard level.rawValue <= MONGOC_LOG_LEVEL_WARNING.rawValue, let message else { return }
                let d = domain.map { String(cString: $0) } ?? "mongoc"
                driverLogger.warning("libmongoc", metadata: [LogKey.mongocDomain: .string(d), LogKey.mongocMessage: .string(String(cString: message))])
            }, nil)
    }()

    /// Parses and checks `uri` and creates the client pool. No network traffic happens here;
    /// call ``ping()`` to check that a server answers.
    /// - Parameters:
    ///   - uri: a MongoDB connection string.
    ///   - database: the database name; defaults to the one in the URI, else `argus`.
    ///   - threads: how many blocking calls may run at once.
    /// - Throws: ``MongoStoreError`` of kind `invalidURI` with the driver's reason.
    public init(uri: String, database: String? = nil, threads: Int = 8, appName: String = "argus", logger: Logger) throws {
        _ = MongoStore.initOnce
        let err = argus_error_new()!
        defer { argus_error_free(err) }
        guard let parsed = mongoc_uri_new_with_error(uri, err) else {
            throw MongoStoreError(
                kind: .invalidURI, operation: "connect", collection: nil,
                code: Int(argus_error_code(err)),
                message: "malformed MongoDB URI: \(String(cString: argus_error_message(err)))")
        }
        defer { mongoc_uri_destroy(parsed) }
        let uriDatabase = mongoc_uri_get_database(parsed).map { String(cString: $0) }
        self.databaseName = database ?? uriDatabase.flatMap { $0.isEmpty ? nil : $0 } ?? "argus"
        guard let p = mongoc_client_pool_new_with_error(parsed, err) else {
            throw MongoStoreError(
                kind: .invalidURI, operation: "connect", collection: nil,
                code: Int(argus_error_code(err)),
                message: String(cString: argus_error_message(err)))
        }
        mongoc_client_pool_set_error_api(p, Int32(MONGOC_ERROR_API_VERSION_2))
        mongoc_client_pool_set_appname(p, appName)
        // Blocking calls plus a few change streams; a pop never waits for long.
        mongoc_client_pool_max_size(p, UInt32(threads + Self.priorityThreads + 16))
        self.pool = PoolBox(p)
        self.threadPool = NIOThreadPool(numberOfThreads: threads)
        self.threadPool.start()
        self.priorityPool = NIOThreadPool(numberOfThreads: Self.priorityThreads)
        self.priorityPool.start()
        self.logger = logger
    }

    /// Stops the thread pools and the change streams, then destroys the client pool.
    /// Outstanding calls fail with `shutdown`. A change stream's thread holds a client while it
    /// waits in the server (up to its `maxAwaitMilliseconds`), so the pool is destroyed only once
    /// every stream thread has given its client back: destroying it under a running stream is a
    /// use-after-free in libmongoc. If one does not come back in time, the pool is left alone.
    public func shutdown() async {
        for stream in watches.close() { stream.stop() }
        try? await threadPool.shutdownGracefully()
        try? await priorityPool.shutdownGracefully()
        let deadline = ContinuousClock.now + Self.watchShutdownTimeout
        while watches.clientsOut > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if watches.clientsOut > 0 {
            logger.warning(
                "change streams still running at shutdown; leaving the client pool to the process exit",
                metadata: [LogKey.streams: .stringConvertible(watches.clientsOut)])
            return
        }
        pool.destroy()
    }

    /// A handle on one collection of ``databaseName``.
    /// - Parameter priority: run this handle's calls on the priority thread pool (for the few
    ///   latency-critical collections).
    public func collection(_ name: String, priority: Bool = false) -> MongoCollection {
        MongoCollection(store: self, name: name, priority: priority)
    }

    /// Runs `body` on the store's thread pool with a client from the pool.
    func withClient<T: Sendable>(
        operation: String, collection: String?, priority: Bool = false,
        _ body: @escaping @Sendable (OpaquePointer) throws -> T
    ) async throws -> T {
        let pool = self.pool
        let started = ContinuousClock.now
        defer {
            // Time a caller waits for a store call, queueing on the thread pool included.
            Metrics.Timer(label: "argus_store_call_seconds", dimensions: [("operation", operation), ("collection", collection ?? "-")])
                .record(ContinuousClock.now - started)
        }
        do {
            return try await (priority ? priorityPool : threadPool).runIfActive {
                guard let p = pool.pointer, let client = mongoc_client_pool_pop(p) else {
                    throw MongoStoreError(kind: .shutdown, operation: operation, collection: collection, message: "store is shut down")
                }
                defer { mongoc_client_pool_push(p, client) }
                return try body(client)
            }
        } catch let e as MongoStoreError {
            throw e
        } catch {
            throw MongoStoreError(kind: .shutdown, operation: operation, collection: collection, message: "store is shut down (\(error))")
        }
    }

    /// Pops a client for a long-lived use (a change stream) on the caller's thread; nil once
    /// the store is shutting down. Give it back with ``pushClient(_:)``.
    func popClient() -> OpaquePointer? {
        guard watches.checkOut() else { return nil }
        guard let client = pool.pointer.flatMap({ mongoc_client_pool_pop($0) }) else { watches.checkIn(); return nil }
        return client
    }
    func pushClient(_ client: OpaquePointer) {
        if let p = pool.pointer { mongoc_client_pool_push(p, client) }
        watches.checkIn()
    }

    /// Runs a database command and returns the server's reply.
    public func runCommand(_ command: Document, operation: String? = nil, collection: String? = nil) async throws -> Document {
        let db = databaseName
        let op = operation ?? command.keys.first ?? "command"
        return try await withClient(operation: op, collection: collection) { client in
            let err = argus_error_new()!
            defer { argus_error_free(err) }
            let reply = bson_new()!
            defer { bson_destroy(reply) }
            let ok = command.withBSON { cmd in mongoc_client_command_simple(client, db, cmd, nil, reply, err) }
            guard ok else { throw MongoStoreError.from(err, operation: op, collection: collection) }
            return Document(copying: reply)
        }
    }

    /// Sends `ping` and waits for the answer. Fails with kind `unreachable` when no server
    /// answers within the URI's server-selection timeout.
    public func ping() async throws {
        _ = try await runCommand(["ping": 1], operation: "ping")
    }

    /// Drops the whole database. For tests and tools only.
    public func dropDatabase() async throws {
        _ = try await runCommand(["dropDatabase": 1])
    }
}

/// The change streams of a store and how many clients their threads hold.
final class WatchRegistry: Sendable {
    private struct State {
        var streams: [ObjectIdentifier: ChangeStream.State] = [:]
        var out = 0
        var closed = false
    }
    private let state = Mutex(State())

    /// Registers a stream; false once the store is shutting down.
    func add(_ s: ChangeStream.State) -> Bool {
        state.withLock { st in
            guard !st.closed else { return false }
            st.streams[ObjectIdentifier(s)] = s
            return true
        }
    }

    func remove(_ s: ChangeStream.State) { state.withLock { $0.streams[ObjectIdentifier(s)] = nil } }

    func checkOut() -> Bool {
        state.withLock { st in
            guard !st.closed else { return false }
            st.out += 1
            return true
        }
    }

    func checkIn() { state.withLock { $0.out -= 1 } }

    var clientsOut: Int { state.withLock { $0.out } }

    /// Refuses new streams and clients; returns the running streams, to stop them.
    func close() -> [ChangeStream.State] {
        state.withLock { st in
            st.closed = true
            return Array(st.streams.values)
        }
    }
}

/// The client pool pointer, destroyed once.
final class PoolBox: Sendable {
    /// The address as an integer: a raw pointer is not Sendable, the integer is.
    private let raw: Mutex<UInt?>
    init(_ p: OpaquePointer) { raw = Mutex(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(p)))) }
    var pointer: OpaquePointer? { raw.withLock { $0 }.flatMap { OpaquePointer(bitPattern: $0) } }
    func destroy() {
        let p = raw.withLock { r -> UInt? in
            defer { r = nil }
            return r
        }
        if let p, let pool = OpaquePointer(bitPattern: p) { mongoc_client_pool_destroy(pool) }
    }
}
