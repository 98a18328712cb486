import Foundation
import Logging
import MongoStore
import NIOConcurrencyHelpers
import ServiceLifecycle

/// A change of a box's presence, to be written to `devices`.
enum PresenceChange: Sendable, Equatable {
    case online(session: String, connectedAt: Date, remoteAddress: String?, model: String, firmware: String, bootId: String)
    case offline(session: String, lastSeen: Date)
}

/// Writes presence to the store in batches.
///
/// Connects and disconnects arrive at WebSocket speed; the store takes a few hundred writes a
/// second. Changes are coalesced per box (the latest wins, so the map never holds more
/// entries than there are boxes) and flushed as one unordered bulk write. If the store is
/// down, the pending changes stay and the flush is retried with capped backoff.
final class PresenceWriter: Service, Sendable {
    private let devices: MongoCollection
    private let node: String
    private let logger: Logger
    private let pending = NIOLockedValueBox<[String: PresenceChange]>([:])
    private let wake = AsyncWakeup()
    private let flushInterval: Duration

    init(store: MongoStore, node: String, flushInterval: Duration = .milliseconds(100), logger: Logger) {
        devices = store.collection(Schema.devices)
        self.node = node
        self.flushInterval = flushInterval
        self.logger = logger
    }

    /// Queues a change; never blocks.
    func submit(_ deviceID: String, _ change: PresenceChange) {
        pending.withLockedValue { $0[deviceID] = change }
        wake.signal()
    }

    var pendingCount: Int { pending.withLockedValue { $0.count } }

    func run() async throws {
        var backoff = Duration.milliseconds(200)
        while true {
            await cancelWhenGracefulShutdown { await self.wake.wait() }
            if Task.isCancelled || Task.isShuttingDownGracefully {
                try? await flush()
                return
            }
            do {
                try await flush()
                backoff = .milliseconds(200)
                try? await Task.sleep(for: flushInterval)
            } catch {
                logger.warning("presence write failed; will retry", metadata: ["error": .string("\(error)"), "retry.in": .string("\(backoff)")])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(10))
                wake.signal()
            }
        }
    }

    /// Writes everything pending in one bulk write. On failure the changes go back, unless a
    /// newer change for the same box arrived meanwhile.
    func flush() async throws {
        let batch = pending.withLockedValue { p -> [String: PresenceChange] in let b = p; p = [:]; return b }
        guard !batch.isEmpty else { return }
        let writes: [WriteModel] = batch.map { id, change in
            switch change {
            case .online(let session, let at, let remote, let model, let firmware, let bootId):
                return .updateOne(filter: ["_id": .string(id)], update: ["$set": [
                    "online": true, "node": .string(node), "session": .string(session), "connectedAt": .date(at),
                    "lastSeen": .date(at), "remoteAddress": remote.map { .string($0) } ?? .null,
                    "model": .string(model), "firmware": .string(firmware), "bootId": .string(bootId),
                ]], upsert: false)
            case .offline(let session, let lastSeen):
                // Only the session that went away may mark the box offline: a newer session,
                // here or on another node, has already replaced it.
                return .updateOne(filter: ["_id": .string(id), "session": .string(session)],
                                  update: ["$set": ["online": false, "lastSeen": .date(lastSeen)]], upsert: false)
            }
        }
        do {
            _ = try await devices.bulkWrite(writes, operation: "presence")
        } catch {
            pending.withLockedValue { p in for (id, c) in batch where p[id] == nil { p[id] = c } }
            throw error
        }
    }

    /// Marks every box this node had online as offline: at start (after a crash) and after draining.
    func markNodeOffline(now: Date = Date()) async throws -> Int {
        try await devices.updateMany(["node": .string(node), "online": true],
                                     ["$set": ["online": false, "lastSeen": .date(now)]]).modifiedCount
    }
}

/// A one-slot wake-up signal between synchronous producers and one async consumer.
final class AsyncWakeup: Sendable {
    private let state = NIOLockedValueBox<(signalled: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func signal() {
        let w = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter { s.waiter = nil; return w }
            s.signalled = true
            return nil
        }
        w?.resume()
    }

    /// Returns at once if signalled since the last wait; otherwise waits for a signal or cancellation.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { s -> Bool in
                    if s.signalled || Task.isCancelled { s.signalled = false; return true }
                    s.waiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            signal()
        }
    }
}
