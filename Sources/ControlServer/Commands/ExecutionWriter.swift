import ArgusSupport
import Atomics
import Commands
import Foundation
import Logging
import Metrics
import MongoStore
import NIOConcurrencyHelpers
import NIOCore
import STBProtocol
import ServiceLifecycle
import Synchronization

/// Batches the command service's own execution updates into bulk writes. Bounded: past
/// `limit` pending updates the oldest are dropped (counted and logged); the store sweeper
/// and box reports still bring those executions to their final state.
final class ExecutionWriter: Sendable {
    enum Op: Sendable {
        case sent(job: String, devices: [String], at: Int64)
        case requeue(id: String, at: Int64)
        case finish(id: String, state: ExecutionState, reason: String?, at: Int64)
    }
    let collection: MongoCollection
    let node: String
    let logger: Logger
    static let limit = 200_000
    private let ops: PendingWrites<Op>

    init(collection: MongoCollection, node: String, logger: Logger) {
        self.collection = collection
        self.node = node
        self.logger = logger
        let dropped = Counter(label: "argus_command_writes_dropped_total")
        let log = RateLimitedLog()
        ops = PendingWrites(
            limit: Self.limit, weight: { op in if case .sent(_, let d, _) = op { d.count } else { 1 } },
            onDrop: { n in
                dropped.increment(by: Int64(n))
                log.event { folded in
                    logger.warning(
                        "execution updates dropped: the store is behind",
                        metadata: [LogKey.dropped: .stringConvertible(n), LogKey.dropsFolded: .stringConvertible(folded)])
                }
            })
    }

    func sent(job: String, devices: [String], at: Int64) { ops.submit(.sent(job: job, devices: devices, at: at)) }
    func requeue(_ id: String, at: Int64) { ops.submit(.requeue(id: id, at: at)) }
    func finish(_ id: String, _ state: ExecutionState, reason: String?, at: Int64) { ops.submit(.finish(id: id, state: state, reason: reason, at: at)) }

    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
            await flush()
        }
    }

    /// Writes what is pending; on failure puts it back for the next round.
    func flush() async {
        let batch = ops.take()
        guard !batch.isEmpty else { return }
        var writes: [WriteModel] = []
        let open = CommandRepository.open
        let sentState = BSON.string(ExecutionState.sent.rawValue)
        for op in batch {
            switch op {
            case .sent(let job, let devices, let at):
                let t = BSON.date(Date(millis: at))
                for start in stride(from: 0, to: devices.count, by: CommandRepository.inChunk) {
                    let part = devices[start..<min(devices.count, start + CommandRepository.inChunk)].map { BSON.string($0) }
                    writes.append(
                        .updateMany(
                            filter: [
                                "job": .string(job), "device": ["$in": .array(part)],
                                "$or": [["state": .string(ExecutionState.queued.rawValue)], ["state": sentState, "confirmed": ["$ne": true]]],
                            ],
                            update: [
                                "$set": ["state": sentState, "node": .string(node), "updatedAt": t], "$inc": ["attempts": 1],
                                "$push": ["history": ["s": sentState, "at": t]],
                            ], upsert: false))
                }
            case .requeue(let id, let at):
                let t = BSON.date(Date(millis: at))
                writes.append(
                    .updateOne(
                        filter: ["_id": .string(id), "state": sentState, "confirmed": ["$ne": true]],
                        update: [
                            "$set": ["state": .string(ExecutionState.queued.rawValue), "updatedAt": t],
                            "$push": ["history": ["s": .string(ExecutionState.queued.rawValue), "at": t]],
                        ], upsert: false))
            case .finish(let id, let state, let reason, let at):
                let t = BSON.date(Date(millis: at))
                var set: Document = ["state": .string(state.rawValue), "updatedAt": t, "finishedAt": t]
                var entry: Document = ["s": .string(state.rawValue), "at": t]
                if let reason { set["reason"] = .string(reason); entry["reason"] = .string(reason) }
                writes.append(
                    .updateOne(
                        filter: ["_id": .string(id), "state": ["$in": .array(open)]],
                        update: ["$set": .document(set), "$push": ["history": .document(entry)]], upsert: false))
            }
        }
        do {
            _ = try await collection.bulkWrite(writes, operation: "executionUpdates")
        } catch {
            logger.warning(
                "execution updates failed; retrying", metadata: [LogKey.error: .string("\(error)"), LogKey.updates: .stringConvertible(batch.count)])
            ops.putBack(batch)
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
