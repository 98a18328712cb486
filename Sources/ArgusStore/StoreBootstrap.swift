import ArgusSupport
import Foundation
import Logging
import MongoStore
import ServiceLifecycle

/// Brings the store up before anything uses it: waits for it with capped backoff (saying so
/// in the log, never crashing), creates the indexes, issues the bootstrap admin token on a
/// fresh database, and clears presence this node left behind if it died. Then opens the gate.
package final class StoreBootstrap: Service, Sendable {
    package let store: MongoStore
    package let gate: ReadinessGate
    package let tokenFile: String
    package let presence: PresenceWriter
    package let logger: Logger
    package let maxBackoff: Duration
    package let retention: RetentionConfiguration

    package init(
        store: MongoStore, gate: ReadinessGate, tokenFile: String, presence: PresenceWriter, retention: RetentionConfiguration = .init(),
        maxBackoff: Duration = .seconds(10), logger: Logger
    ) {
        self.retention = retention
        self.store = store
        self.gate = gate
        self.tokenFile = tokenFile
        self.presence = presence
        self.maxBackoff = maxBackoff
        self.logger = logger
    }

    package func run() async throws {
        let ok = await cancelWhenGracefulShutdown { await self.prepare() }
        if ok != true {
            gate.abandon()
            return
        }
        gate.open()
        try? await gracefulShutdown()
    }

    /// Returns true when ready, false if shut down first.
    private func prepare() async -> Bool {
        var backoff = Duration.milliseconds(250)
        var attempt = 1
        while !Task.isCancelled {
            do {
                try await store.ping()
                try await Schema.ensureIndexes(store, retention: retention)
                try await issueBootstrapTokenIfNeeded()
                let stale = try await presence.markNodeOffline()
                if stale > 0 { logger.notice("cleared presence left by an earlier run of this node", metadata: [LogKey.devices: .stringConvertible(stale)]) }
                logger.info("store ready", metadata: [LogKey.storeDatabase: .string(store.databaseName), LogKey.attempt: .stringConvertible(attempt)])
                return true
            } catch {
                logger.warning(
                    "store not reachable; retrying",
                    metadata: [
                        LogKey.error: .string("\(error)"), LogKey.attempt: .stringConvertible(attempt), LogKey.retryIn: .string("\(backoff)"),
                    ])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, maxBackoff)
                attempt += 1
            }
        }
        return false
    }

    /// On a database with no bootstrap record, creates an admin token and writes it to
    /// `tokenFile` with mode 0600. Only one node can win the insert of the record.
    private func issueBootstrapTokenIfNeeded() async throws {
        let meta = store.collection(Schema.meta)
        if try await meta.findOne(["_id": "bootstrap"]) != nil { return }
        do {
            try await meta.insertOne(["_id": "bootstrap", "at": .date(Date())])
        } catch let e as MongoStoreError where e.kind == .duplicateKey {
            return
        }
        let (token, record) = try await TokenRepository(store: store).create(name: "bootstrap", role: .admin, createdBy: "hub", now: Date())
        try Self.writeSecretFile(path: tokenFile, contents: token + "\n")
        logger.notice("bootstrap admin token written", metadata: [LogKey.tokenFile: .string(tokenFile), LogKey.tokenID: .string(record.id)])
    }

    /// Writes a file only its owner can read, replacing any old one.
    package static func writeSecretFile(path: String, contents: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
        defer { close(fd) }
        let bytes = Array(contents.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
    }
}
