import ArgusSupport
import Foundation
import Logging
import Metrics
import MongoStore
import ServiceLifecycle

/// What a session said about its box at `hello`.
package struct SessionInfo: Sendable, Equatable {
    package var connectedAt: Date
    package var remoteAddress: String?
    package var model: String
    package var firmware: String
    package var bootId: String

    package init(connectedAt: Date, remoteAddress: String?, model: String, firmware: String, bootId: String) {
        self.connectedAt = connectedAt
        self.remoteAddress = remoteAddress
        self.model = model
        self.firmware = firmware
        self.bootId = bootId
    }
}

/// A change of a box's presence, to be written to `devices`.
package enum PresenceChange: Sendable, Equatable {
    case online(session: String, connectedAt: Date, remoteAddress: String?, model: String, firmware: String, bootId: String)
    /// With `info` (a session that said hello), the offline write also records what its hello
    /// said, for when the `online` change was coalesced away before it was written (a short
    /// session): the box's model and firmware are then still those it reported.
    case offline(session: String, lastSeen: Date, info: SessionInfo? = nil)
}

/// Writes presence to the store in batches.
///
/// Connects and disconnects arrive at WebSocket speed; the store takes a few hundred writes a
/// second. Changes are coalesced per box (the latest wins, so the map never holds more
/// entries than there are boxes) and flushed as one unordered bulk write. If the store is
/// down, the pending changes stay and the flush is retried with capped backoff.
package final class PresenceWriter: Service, Sendable {
    /// A box's latest change; the batch is keyed by box, so superseded changes are dropped
    /// before they are written.
    package struct Pending: Sendable {
        package let device: String
        package let change: PresenceChange
        /// When the change happened on this node (for the lag histogram).
        package var at: ContinuousClock.Instant = .now
    }
    /// At most this many boxes pending; past it the oldest changes are dropped (counted in
    /// `argus_presence_writes_dropped_total`). Far above any node's box count.
    package static let limit = 1_000_000
    private let devices: MongoCollection
    private let node: String
    private let logger: Logger
    private let pending: PendingWrites<Pending>
    private let wake: Wakeup
    private let flushInterval: Duration
    /// From a connect or disconnect to the store showing it (the bulk write acknowledged), in
    /// seconds; superseded changes are never written and not counted.
    private let lag = Metrics.Timer(label: "argus_presence_lag_seconds")

    package init(store: MongoStore, node: String, flushInterval: Duration = .milliseconds(100), logger: Logger) {
        devices = store.collection(Schema.devices)
        self.node = node
        self.flushInterval = flushInterval
        self.logger = logger
        let dropped = Counter(label: "argus_presence_writes_dropped_total")
        pending = PendingWrites(limit: Self.limit, key: { $0.device }, onDrop: { n in dropped.increment(by: Int64(n)) })
        wake = Wakeup()
    }

    /// Queues a change; never blocks.
    package func submit(_ deviceID: String, _ change: PresenceChange) {
        pending.submit(Pending(device: deviceID, change: change))
        wake.signal()
    }

    package var pendingCount: Int { pending.count }

    package func run() async throws {
        let signals = wake.signals
        await cancelWhenGracefulShutdown {
            var backoff = Duration.milliseconds(200)
            for await _ in signals {
                do {
                    try await self.flush()
                    backoff = .milliseconds(200)
                    try? await Task.sleep(for: self.flushInterval)
                } catch {
                    self.logger.warning(
                        "presence write failed; will retry", metadata: [LogKey.error: .string("\(error)"), LogKey.retryIn: .string("\(backoff)")])
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(10))
                    self.wake.signal()
                }
            }
        }
        try? await flush()
    }

    /// Writes everything pending in one bulk write. On failure the changes go back, unless a
    /// newer change for the same box arrived meanwhile.
    package func flush() async throws {
        let batch = pending.take()
        guard !batch.isEmpty else { return }
        let writes: [WriteModel] = batch.map { p in
            let id = p.device
            switch p.change {
            case .online(let session, let at, let remote, let model, let firmware, let bootId):
                return .updateOne(
                    filter: ["_id": .string(id)],
                    update: [
                        "$set": [
                            "online": true, "node": .string(node), "session": .string(session), "connectedAt": .date(at),
                            "lastSeen": .date(at), "remoteAddress": remote.map { .string($0) } ?? .null,
                            "model": .string(model), "firmware": .string(firmware), "bootId": .string(bootId),
                        ]
                    ], upsert: false)
            case .offline(let session, let lastSeen, nil):
                // Only the session that went away may mark the box offline: a newer session,
                // here or on another node, has already replaced it.
                return .updateOne(
                    filter: ["_id": .string(id), "session": .string(session)],
                    update: ["$set": ["online": false, "lastSeen": .date(lastSeen)]], upsert: false)
            case .offline(let session, let lastSeen, let info?):
                // The same, or, when this session's `online` was never written, over any older
                // session's state (never over a newer one's: its connectedAt is later).
                return .updateOne(
                    filter: [
                        "_id": .string(id),
                        "$or": [
                            ["session": .string(session)], ["connectedAt": ["$lt": .date(info.connectedAt)]],
                            ["connectedAt": ["$exists": false]],
                        ],
                    ],
                    update: [
                        "$set": [
                            "online": false, "lastSeen": .date(lastSeen), "node": .string(node), "session": .string(session),
                            "connectedAt": .date(info.connectedAt), "remoteAddress": info.remoteAddress.map { .string($0) } ?? .null,
                            "model": .string(info.model), "firmware": .string(info.firmware), "bootId": .string(info.bootId),
                        ]
                    ], upsert: false)
            }
        }
        do {
            _ = try await devices.bulkWrite(writes, operation: "presence")
            let now = ContinuousClock.now
            for p in batch { lag.record(now - p.at) }
        } catch {
            pending.putBack(batch)
            throw error
        }
    }

    /// Marks every box this node had online as offline: at start (after a crash) and after draining.
    package func markNodeOffline(now: Date = Date()) async throws -> Int {
        try await devices.updateMany(
            ["node": .string(node), "online": true],
            ["$set": ["online": false, "lastSeen": .date(now)]]
        ).modifiedCount
    }
}
