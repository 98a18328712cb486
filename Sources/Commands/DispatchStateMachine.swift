/// A job as dispatch needs it.
public protocol DispatchJob: Sendable {
    var id: String { get }
    /// The command's name (`reboot`, `log_tail`, …).
    var name: String { get }
    var createdAt: Int64 { get }
    var deadline: Int64 { get }
}

/// A box's session as dispatch sees it: an identity unique per connection, and its box.
public protocol DispatchSession: Sendable, Identifiable where ID: Sendable {
    var deviceID: String { get }
}

/// One node's command dispatch bookkeeping as a value type that returns actions: which
/// executions it follows (one ``ExecutionStateMachine`` each), by box and by session, the job
/// versions it has handled, the hellos waiting for a lookup, the jobs still being written, and
/// the executions that finished in a session here.
///
/// The command service keeps it under one lock and carries out what it returns (send frames,
/// write the store, count). It does no I/O and reads no clock: every call takes `now` in
/// milliseconds, so tests drive it with plain numbers. This is the `PoolStateMachine` pattern
/// of postgres-nio.
///
/// Dedupe: a job reaches a node along several paths (its own create, the change stream,
/// polling, a hello lookup). An execution is sent at most once per session: not again while it
/// is followed in that session, nor after it finished there.
public struct DispatchStateMachine<Session: DispatchSession, Job: DispatchJob>: Sendable {
    public struct Configuration: Sendable {
        public var timeouts: ExecutionStateMachine.Timeouts
        /// Executions followed in memory; beyond it, sends still happen and the store sweeper
        /// takes over retries and timeouts.
        public var maxTracked: Int
        /// Jobs still being written, remembered for hellos; the oldest go first.
        public var maxUnmaterialized: Int
        /// Finished executions remembered for dedupe.
        public var finishedMemory: Int
        /// Job versions remembered; when full, the memory starts again.
        public var seenMemory: Int
        /// Hellos waiting for their lookup; beyond it the oldest are dropped and counted (a box
        /// whose hello was dropped gets its commands at its next hello or from the sweeper's
        /// store writes).
        public var maxHellos: Int

        public init(
            timeouts: ExecutionStateMachine.Timeouts = .init(), maxTracked: Int = 500_000, maxUnmaterialized: Int = 64,
            finishedMemory: Int = 100_000, seenMemory: Int = 100_000, maxHellos: Int = 200_000
        ) {
            self.timeouts = timeouts
            self.maxTracked = maxTracked
            self.maxUnmaterialized = maxUnmaterialized
            self.finishedMemory = finishedMemory
            self.seenMemory = seenMemory
            self.maxHellos = maxHellos
        }
    }

    public struct Tracked: Sendable {
        public var machine: ExecutionStateMachine
        public var job: Job
        public var device: String
        public var session: Session
    }

    /// What ``deliver(_:to:now:)`` asks for.
    public struct Delivery: Sendable {
        /// Send the job's frame to these sessions.
        public var send: [Session] = []
        /// Their boxes (record SENT).
        public var sent: [String] = []
        /// Executions past their deadline before any send (record EXPIRED).
        public var expired: [String] = []
    }

    /// What ``tick(now:)`` asks for.
    public struct Tick: Sendable {
        /// Unconfirmed deliveries back in the queue (record QUEUED).
        public var requeued: [String] = []
        /// Send again: (session, job, box); record SENT.
        public var resend: [(session: Session, job: Job, device: String)] = []
        /// Executions that reached a terminal state here (record them).
        public var finished: [(key: String, state: ExecutionState, reason: String?)] = []
    }

    public enum ReportOutcome: Sendable, Equatable {
        /// Not followed here (another node's, finished, or over the memory limit).
        case untracked
        /// Followed; still open. `roundTrip`: from the send to this `received`, in ms.
        case open(roundTrip: Int64?)
        /// Followed and now terminal: it is no longer followed, and is remembered for dedupe.
        case finished(ExecutionState, roundTrip: Int64?)
    }

    /// A version of a job seen on the job feed.
    public enum Observation: Sendable, Equatable {
        /// Seen at this version or a newer one already.
        case stale
        /// The first version seen here: deliver it.
        case first
        /// A newer version of a job seen before (cancel, materialized).
        case update
    }

    public let configuration: Configuration
    public private(set) var tracked: [String: Tracked] = [:]
    private var byDevice: [String: Set<String>] = [:]
    /// Jobs whose executions may not all be stored yet (checked on hello).
    public private(set) var unmaterialized: [String: Job] = [:]
    private var seen: [String: Int] = [:]
    private var hellos: [Session] = []
    private var hellosHead = 0
    public private(set) var hellosDropped = 0
    private var finishedIn: [String: Session.ID] = [:]
    private var finishedOrder: [String] = []
    private var finishedHead = 0

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// The `_id` of an execution in the store.
    public static func key(job: String, device: String) -> String { "\(job)|\(device)" }

    public var trackedCount: Int { tracked.count }
    public var pendingHellos: Int { hellos.count - hellosHead }

    // MARK: - Jobs

    /// A version of a job reached this node. Versions only grow; an older or equal one is stale.
    public mutating func observe(job id: String, version: Int) -> Observation {
        if let v = seen[id], v >= version { return .stale }
        let first = seen[id] == nil
        if seen.count >= configuration.seenMemory && first { seen.removeAll(keepingCapacity: true) }
        seen[id] = version
        return first ? .first : .update
    }

    /// A job whose executions are still being written: hellos check it.
    public mutating func remember(_ job: Job) {
        unmaterialized[job.id] = job
        if unmaterialized.count > configuration.maxUnmaterialized,
            let oldest = unmaterialized.values.min(by: { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) })
        {
            unmaterialized[oldest.id] = nil
        }
    }

    /// Every execution of the job is stored.
    public mutating func materialized(_ job: String) { unmaterialized[job] = nil }

    /// Sends `job` to these sessions, unless already sent in that session or finished there.
    public mutating func deliver(_ job: Job, to sessions: some Sequence<(device: String, session: Session)>, now: Int64) -> Delivery {
        var out = Delivery()
        for (device, session) in sessions {
            let key = Self.key(job: job.id, device: device)
            if let t = tracked[key], t.session.id == session.id { continue }
            if finishedIn[key] == session.id { continue }
            var timeouts = configuration.timeouts
            if job.name == CommandName.logTail.rawValue { timeouts.runMillis = 630_000 }
            var m = ExecutionStateMachine(createdAt: job.createdAt, deadline: job.deadline, timeouts: timeouts)
            switch m.deliver(now: now) {
            case .send:
                if let old = tracked[key] { forget(key, old.device) }
                if tracked.count < configuration.maxTracked {
                    tracked[key] = Tracked(machine: m, job: job, device: device, session: session)
                    byDevice[device, default: []].insert(key)
                }
                out.send.append(session)
                out.sent.append(device)
            case .finished(.expired):
                out.expired.append(key)
            default:
                break
            }
        }
        return out
    }

    /// Cancels a job here. Returns the sessions to tell to stop (commands that can stop:
    /// `log_tail`); its executions are no longer followed.
    public mutating func cancel(job: String, now: Int64) -> [Session] {
        unmaterialized[job] = nil
        var stop: [Session] = []
        for (key, t) in tracked where t.job.id == job {
            var m = t.machine
            if case .sendCancel = m.cancel(now: now), t.job.name == CommandName.logTail.rawValue { stop.append(t.session) }
            forget(key, t.device)
        }
        return stop
    }

    // MARK: - Sessions

    /// A box said hello: queue its lookup of open executions.
    public mutating func sessionStarted(_ session: Session) {
        hellos.append(session)
        if hellos.count - hellosHead > configuration.maxHellos {
            hellosHead += 1
            hellosDropped += 1
        }
        compactHellos()
    }

    /// Takes up to `max` queued hellos, oldest first.
    public mutating func takeHellos(max: Int) -> [Session] {
        let end = min(hellos.count, hellosHead + max)
        let batch = Array(hellos[hellosHead..<end])
        hellosHead = end
        compactHellos()
        return batch
    }

    /// A session ended: its unconfirmed deliveries go back to QUEUED (returned, to record);
    /// nothing of that session stays followed.
    public mutating func sessionEnded(_ session: Session, now: Int64) -> [String] {
        guard let keys = byDevice[session.deviceID] else { return [] }
        var requeued: [String] = []
        for key in keys.sorted() {
            guard var t = tracked[key], t.session.id == session.id else { continue }
            _ = t.machine.disconnected(now: now)
            if t.machine.state == .queued { requeued.append(key) }
            forget(key, t.device)
        }
        return requeued
    }

    // MARK: - Reports and time

    /// A box's `command_status` for job `ref`.
    public mutating func report(
        device: String, ref: String, _ r: BoxReport, progress: String? = nil, reason: String? = nil, now: Int64
    ) -> ReportOutcome {
        let key = Self.key(job: ref, device: device)
        guard var t = tracked[key] else { return .untracked }
        var roundTrip: Int64? = nil
        if r == .received, t.machine.state == .sent, let sentAt = t.machine.history.last(where: { $0.state == .sent })?.at {
            roundTrip = max(0, now - sentAt)
        }
        if case .finished(let st) = t.machine.report(r, now: now, progress: progress, reason: reason) {
            rememberFinished(key, t.session.id)
            forget(key, device)
            return .finished(st, roundTrip: roundTrip)
        }
        tracked[key] = t
        return .open(roundTrip: roundTrip)
    }

    /// Retries, run timeouts and expiry of the executions followed here.
    public mutating func tick(now: Int64) -> Tick {
        var out = Tick()
        for (key, var t) in tracked {
            let before = t.machine.state
            if case .finished(let st) = t.machine.tick(now: now) {
                out.finished.append((key, st, t.machine.reason))
                forget(key, t.device)
                continue
            }
            if before == .sent && t.machine.state == .queued { out.requeued.append(key) }
            if t.machine.state == .queued, case .send = t.machine.deliver(now: now) {
                out.resend.append((t.session, t.job, t.device))
            }
            tracked[key] = t
        }
        return out
    }

    // MARK: - Internals

    private mutating func forget(_ key: String, _ device: String) {
        tracked[key] = nil
        byDevice[device]?.remove(key)
        if byDevice[device]?.isEmpty == true { byDevice[device] = nil }
    }

    private mutating func rememberFinished(_ key: String, _ session: Session.ID) {
        if finishedIn.updateValue(session, forKey: key) == nil { finishedOrder.append(key) }
        if finishedOrder.count - finishedHead > configuration.finishedMemory {
            finishedIn[finishedOrder[finishedHead]] = nil
            finishedHead += 1
            if finishedHead > configuration.finishedMemory {
                finishedOrder.removeFirst(finishedHead)
                finishedHead = 0
            }
        }
    }

    private mutating func compactHellos() {
        if hellosHead > 1024 && hellosHead * 2 > hellos.count {
            hellos.removeFirst(hellosHead)
            hellosHead = 0
        }
    }
}
