import ArgusStore
import ArgusSupport
import Atomics
import Commands
import Foundation
import HubGateway
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
package final class ExecutionWriter: Sendable {
    package enum Op: Sendable {
        case sent(job: String, devices: [String], at: Int64)
        case requeue(id: String, at: Int64)
        case finish(id: String, state: ExecutionState, reason: String?, at: Int64)
    }
    package let collection: MongoCollection
    package let node: String
    package let logger: Logger
    package static let limit = 200_000
    private let ops: PendingWrites<Op>

    package init(collection: MongoCollection, node: String, logger: Logger) {
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

    package func sent(job: String, devices: [String], at: Int64) { ops.submit(.sent(job: job, devices: devices, at: at)) }
    package func requeue(_ id: String, at: Int64) { ops.submit(.requeue(id: id, at: at)) }
    package func finish(_ id: String, _ state: ExecutionState, reason: String?, at: Int64) { ops.submit(.finish(id: id, state: state, reason: reason, at: at)) }

    package func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
            await flush()
        }
    }

    /// Writes what is pending; on failure puts it back for the next round.
    package func flush() async {
        let batch = ops.take()
        guard !batch.isEmpty else { return }
        var writes: [WriteModel] = []
        for op in batch {
            switch op {
            case .sent(let job, let devices, let at):
                // A first delivery, or a redelivery the box has not confirmed.
                let change = ExecutionChange(to: .sent, at: Date(millis: at), node: node, countsAttempt: true, unconfirmedOnly: true)
                for start in stride(from: 0, to: devices.count, by: CommandRepository.inChunk) {
                    let part = devices[start..<min(devices.count, start + CommandRepository.inChunk)].map { BSON.string($0) }
                    writes.append(ExecutionTransitions.many(["job": .string(job), "device": ["$in": .array(part)]], change))
                }
            case .requeue(let id, let at):
                writes.append(ExecutionTransitions.one(id, ExecutionChange(to: .queued, at: Date(millis: at), unconfirmedOnly: true)))
            case .finish(let id, let state, let reason, let at):
                writes.append(ExecutionTransitions.one(id, ExecutionChange(to: state, at: Date(millis: at), reason: reason)))
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
