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

/// How nodes learn about jobs created on other nodes.
package enum JobNotification: String, Sendable, CaseIterable {
    /// A MongoDB change stream on `jobs` (needs a replica set), with polling as the fallback
    /// while the stream is down.
    case changeStream = "stream"
    /// Polling only.
    case poll
}

package struct CommandSettings: Sendable {
    package var timeouts = ExecutionStateMachine.Timeouts()
    package var notification = JobNotification.changeStream
    package var pollInterval: Duration = .seconds(1)
    /// Default lifetime of a job whose request gives no deadline.
    package var defaultTTLMillis: Int64 = 86_400_000
    /// Most boxes in one job.
    package var maxTargets = 100_000
    /// Jobs up to this size have every execution stored before the API answers; larger ones
    /// are stored in the background, with progress on the job.
    package var syncMaterializeLimit = 1000
    /// Executions followed in memory for retries and timeouts; beyond it, the store sweeper
    /// handles them.
    package var maxTracked = 500_000
    package var sweepInterval: Duration = .seconds(5)
    /// Large jobs: how long after delivery starts their executions are written.
    package var materializeDelay: Duration = .seconds(3)

    package init(
        pollInterval: Duration = .seconds(1), defaultTTLMillis: Int64 = 86_400_000, sweepInterval: Duration = .seconds(5),
        materializeDelay: Duration = .seconds(3)
    ) {
        self.pollInterval = pollInterval
        self.defaultTTLMillis = defaultTTLMillis
        self.sweepInterval = sweepInterval
        self.materializeDelay = materializeDelay
    }
}

/// Delivers command jobs to the boxes connected to this node, and follows each delivered
/// execution with an ``ExecutionStateMachine`` (retries with backoff, timeouts, cancel).
///
/// - A new job is delivered at once to the boxes online here; other nodes hear of it through
///   the change stream on `jobs` (or polling) and deliver to theirs. The frame is encoded once
///   per node and shared by every box.
/// - A box that says hello gets its open executions from the store (hellos are batched into
///   one query per 50 ms), plus those of jobs whose executions are still being written.
/// - Box reports reach the store through the telemetry spool (durable before the ack); this
///   service only sees them to drive its state machines.
/// - Store writes of its own transitions (SENT, back to QUEUED, TIMED_OUT, EXPIRED) are
///   batched by ``ExecutionWriter``. A periodic sweep expires queued executions past their
///   deadline and times out those a dead node left behind.
package final class CommandService: Service, SessionCommandHooks, Sendable {
    package struct Announced: DispatchJob {
        package var id: String
        package var name: String
        package var createdAt: Int64
        package var deadline: Int64
        package var frame: ByteBuffer
        package var devices: Set<String>
        /// Fleet jobs: boxes are matched by their session, not listed.
        package var filter: DeviceFilter?

        package init(_ job: Job) {
            CommandService.framesEncoded.increment()
            id = job.id; name = job.name; createdAt = job.createdAt; deadline = job.deadline
            frame = ByteBuffer(bytes: job.frame); devices = Set(job.devices); filter = job.filter
        }
    }

    /// The dispatch bookkeeping this node keeps (pure; see ``DispatchStateMachine``).
    package typealias Dispatch = DispatchStateMachine<SessionHandle, Announced>

    package let repository: CommandRepository
    package let devices: DeviceRepository
    package let registry: ConnectionRegistry
    package let writer: ExecutionWriter
    package let configuration: CommandSettings
    package let node: String
    package let logger: Logger
    package let state: Mutex<Dispatch>
    /// The clock, in milliseconds since 1970 (injected by tests).
    package let now: @Sendable () -> Int64
    package let delivered = Counter(label: "argus_commands_delivered_total")
    /// One per job per node (plus one per job in each batch of hellos), however many boxes.
    package static let framesEncoded = Counter(label: "argus_command_frames_encoded_total")
    package let reports = Counter(label: "argus_command_reports_total")
    package let finished = Counter(label: "argus_command_executions_finished_total")
    package let trackedGauge = Gauge(label: "argus_command_executions_tracked")
    /// Of each fan-out to 100 or more boxes on this node (Prometheus histograms, seconds): from
    /// the job's creation to its start here (includes the store insert, and the change stream
    /// on other nodes), and the time to hand every frame to its socket.
    /// From this node sending a command to a box to the box's `received` report reaching it
    /// (through the telemetry spool, so durable), as a Prometheus histogram in seconds.
    package let roundTrip = Metrics.Timer(label: "argus_command_round_trip_seconds")
    package let fanoutDelay = Metrics.Timer(label: "argus_command_fanout_delay_seconds")
    package let fanoutDuration = Metrics.Timer(label: "argus_command_fanout_duration_seconds")

    package let gate: ReadinessGate?

    package init(
        store: MongoStore, registry: ConnectionRegistry, node: String, configuration: CommandSettings = .init(),
        gate: ReadinessGate? = nil, logger: Logger, now: @escaping @Sendable () -> Int64 = { Date().millis }
    ) {
        self.gate = gate
        self.now = now
        state = Mutex(
            Dispatch(configuration: .init(timeouts: configuration.timeouts, maxTracked: configuration.maxTracked)))
        repository = CommandRepository(store: store)
        devices = DeviceRepository(store: store)
        self.registry = registry
        self.node = node
        self.configuration = configuration
        self.logger = logger
        writer = ExecutionWriter(collection: repository.executions, node: node, logger: logger)
    }

    // MARK: - Jobs

    /// Stores a validated job and delivers it to the boxes online here. Other nodes deliver to
    /// theirs when they see it. Small jobs have their executions stored before this returns.
    /// Returns the job with its boxes (a fleet job's are resolved here, after delivery).
    @discardableResult
    package func create(_ job: Job) async throws -> Job {
        var job = job
        let a = Announced(job)
        // Marked seen before the insert, so this node's own change event does not deliver it
        // ahead of its executions.
        state.withLock { s in
            _ = s.observe(job: job.id, version: 1)
            s.remember(a)
        }
        try await repository.insert(job)
        if let filter = job.filter {
            // A fleet job's document is small, so every node hears of it at once and matches
            // its own sessions; the box list, needed only for the executions (the boxes
            // offline now), is read from the store after delivery has started.
            deliverLocal(a, sessions: registry.sessions(matching: filter))
            do { job.devices = try await resolve(job.id, filter) } catch {
                logger.warning(
                    "fleet job stored and delivered here; its executions will be written by the sweeper",
                    metadata: [LogKey.job: .string(job.id), LogKey.error: .string("\(error)")])
                return job
            }
        }
        // The job document is the durable record: once it is stored, delivery can start. Its
        // executions are written alongside (small jobs: before the API answers; large jobs:
        // in the background, with progress on the job); a node that stops halfway leaves the
        // job unmarked, and the sweeper of any node finishes it.
        if job.devices.count <= configuration.syncMaterializeLimit {
            let toStore = job
            async let stored: Void = repository.materialize(toStore)
            if job.filter == nil { deliverLocal(a, devices: job.devices) }
            do {
                try await stored
                try await repository.markMaterialized(job.id)
                state.withLock { $0.materialized(job.id) }
            } catch {
                logger.warning(
                    "job stored; its executions will be written by the sweeper", metadata: [LogKey.job: .string(job.id), LogKey.error: .string("\(error)")])
            }
        } else {
            if job.filter == nil { deliverLocal(a, devices: job.devices) }
            Task { [job, self] in
                // Thousands of inserts would queue the other nodes' change stream (and this
                // node's fan-out writes) behind them: let delivery go first.
                try? await Task.sleep(for: configuration.materializeDelay)
                do { try await materialize(job) } catch {
                    logger.warning(
                        "job stored; its executions will be written by the sweeper", metadata: [LogKey.job: .string(job.id), LogKey.error: .string("\(error)")])
                }
            }
        }
        return job
    }

    /// The boxes of a fleet job, read from the store; their count is stored on the job.
    package func resolve(_ job: String, _ filter: DeviceFilter) async throws -> [String] {
        let ids = try await devices.resolve(filter, limit: 10_000_000).map(\.id)
        _ = try await repository.jobs.updateOne(["_id": .string(job)], ["$set": ["count": .int(ids.count)]])
        return ids
    }

    package func materialize(_ job: Job) async throws {
        var job = job
        if let filter = job.filter, job.devices.isEmpty { job.devices = try await resolve(job.id, filter) }
        let started = ContinuousClock.now
        try await repository.materialize(job) { done in
            if job.devices.count > configuration.syncMaterializeLimit {
                _ = try? await repository.jobs.updateOne(["_id": .string(job.id)], ["$set": ["materializedCount": .int(done)]])
            }
        }
        try await repository.markMaterialized(job.id)
        state.withLock { $0.materialized(job.id) }
        logger.debug(
            "executions stored",
            metadata: [
                LogKey.job: .string(job.id), LogKey.count: .stringConvertible(job.devices.count),
                LogKey.milliseconds: .stringConvertible((ContinuousClock.now - started).components.seconds * 1000),
            ])
    }

    /// Cancels a job everywhere (idempotent). Boxes running it here are told to stop where the
    /// command allows (`log_tail`); their later reports do not change CANCELED.
    package func cancel(job id: String, by: String) async throws -> (exists: Bool, changed: Bool, executions: Int) {
        let r = try await repository.cancel(job: id, by: by, now: Date(timeIntervalSince1970: Double(now()) / 1000))
        if r.exists { cancelLocal(id) }
        return r
    }

    package func cancelLocal(_ job: String) {
        let stop = state.withLock { $0.cancel(job: job, now: now()) }
        guard !stop.isEmpty else { return }
        let f = ByteBuffer(bytes: FrameCodec.command(id: job + "-stop", name: "log_tail_stop", params: [("ref", .string(job))], deadline: nil))
        SessionHandle.forEach(stop) { $0.sendCommand(f) }
    }

    /// Sends a job's frame to those of `devices` that are connected here, unless already sent
    /// in this session.
    package func deliverLocal(_ job: Announced, devices: some Sequence<String>) {
        deliverLocal(job, sessions: registry.sessions(for: devices))
    }

    /// Sends a job's frame to these sessions, unless already sent in this session.
    package func deliverLocal(_ job: Announced, sessions: [(String, SessionHandle)]) {
        guard !sessions.isEmpty else { return }
        let now = now()
        let d = state.withLock { s in
            let d = s.deliver(job, to: sessions.lazy.map { (device: $0.0, session: $0.1) }, now: now)
            trackedGauge.record(s.trackedCount)
            return d
        }
        let frame = job.frame
        // For large fan-outs, how long after the job was created it started here, and how
        // long handing every frame to its socket took.
        if d.send.count >= 100 {
            fanoutDelay.recordMilliseconds(max(0, now - job.createdAt))
            let started = ContinuousClock.now
            let left = ManagedAtomic(SessionHandle.loopCount(d.send))
            SessionHandle.forEach(
                d.send,
                done: { [fanoutDuration] in
                    if left.wrappingDecrementThenLoad(ordering: .relaxed) == 0 { fanoutDuration.record(ContinuousClock.now - started) }
                }
            ) { $0.sendCommand(frame) }
        } else {
            SessionHandle.forEach(d.send) { $0.sendCommand(frame) }
        }
        delivered.increment(by: Int64(d.sent.count))
        if !d.sent.isEmpty { writer.sent(job: job.id, devices: d.sent, at: now) }
        for key in d.expired { writer.finish(key, .expired, reason: "deadline passed", at: now) }
    }

    // MARK: - Gateway hooks (called on the session's event loop)

    /// A box said hello: its open executions are looked up (batched) and sent.
    package func sessionStarted(_ h: SessionHandle) {
        state.withLock { $0.sessionStarted(h) }
    }

    /// A box's session ended: an unconfirmed delivery goes back to QUEUED.
    package func sessionEnded(_ h: SessionHandle) {
        let now = now()
        let requeued = state.withLock { $0.sessionEnded(h, now: now) }
        for key in requeued { writer.requeue(key, at: now) }
    }

    /// A `command_status` the box sent (already accepted for the spool).
    package func report(_ device: String, _ status: CommandStatus) {
        reports.increment()
        let now = now()
        let r: BoxReport =
            switch status.state {
            case .received: .received
            case .inProgress: .inProgress
            case .succeeded: .succeeded
            case .failed: .failed
            case .rejected: .rejected
            }
        let outcome = state.withLock { $0.report(device: device, ref: status.ref, r, progress: status.progress, reason: status.reason, now: now) }
        switch outcome {
        case .untracked:
            break
        case .open(let rt):
            if let rt { roundTrip.recordMilliseconds(rt) }
        case .finished(_, let rt):
            if let rt { roundTrip.recordMilliseconds(rt) }
            finished.increment()
        }
    }
}
