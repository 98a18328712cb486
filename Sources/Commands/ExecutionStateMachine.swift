/// The states of one command execution on one box.
public enum ExecutionState: String, Sendable, Codable, CaseIterable {
    case queued = "QUEUED", sent = "SENT", inProgress = "IN_PROGRESS"
    case succeeded = "SUCCEEDED", failed = "FAILED", timedOut = "TIMED_OUT"
    case canceled = "CANCELED", expired = "EXPIRED", rejected = "REJECTED"

    /// No transition leaves a terminal state.
    public var isTerminal: Bool {
        switch self {
        case .queued, .sent, .inProgress: return false
        default: return true
        }
    }
}

/// What a box reported about an execution (`command_status.state`).
public enum BoxReport: String, Sendable, Equatable {
    case received, inProgress = "in_progress", succeeded, failed, rejected
}

/// One execution's life as a value type that returns actions; the command service stores the
/// state and carries out the actions. Times are milliseconds on any clock the caller chooses,
/// so tests drive it with plain numbers.
///
/// queued --deliver--> sent --received/in_progress--> in progress --succeeded|failed--> done
/// A box can also reject (unknown or invalid for it). An unconfirmed delivery is retried with
/// backoff up to `maxAttempts`, then TIMED_OUT; a queued execution past its deadline EXPIRES;
/// one that stops reporting progress for `runTimeout` TIMES OUT; cancelling is allowed until
/// a terminal state and is idempotent.
public struct ExecutionStateMachine: Sendable, Equatable {
    public struct Timeouts: Sendable, Equatable {
        /// How long a sent command may go unconfirmed before it is sent again.
        public var ackMillis: Int64
        /// How long a running command may go without a report.
        public var runMillis: Int64
        /// Deliveries before giving up.
        public var maxAttempts: Int
        /// First retry delay; doubles each attempt, capped at `retryCapMillis`.
        public var retryBaseMillis: Int64
        public var retryCapMillis: Int64

        public init(
            ackMillis: Int64 = 30_000, runMillis: Int64 = 600_000, maxAttempts: Int = 5,
            retryBaseMillis: Int64 = 5_000, retryCapMillis: Int64 = 300_000
        ) {
            self.ackMillis = ackMillis
            self.runMillis = runMillis
            self.maxAttempts = maxAttempts
            self.retryBaseMillis = retryBaseMillis
            self.retryCapMillis = retryCapMillis
        }
    }

    public enum Action: Sendable, Equatable {
        case none
        /// Send the command frame to the box (attempt number).
        case send(attempt: Int)
        /// Tell the box to stop it (it was sent or running).
        case sendCancel
        /// The execution reached a terminal state: record it, audit it.
        case finished(ExecutionState)
    }

    public private(set) var state: ExecutionState = .queued
    /// Every transition, with its time.
    public private(set) var history: [(state: ExecutionState, at: Int64)]
    public private(set) var attempts = 0
    public private(set) var reason: String?
    public private(set) var progress: String?
    /// Not before this time is the next delivery attempted (retry backoff).
    public private(set) var notBefore: Int64
    private var confirmed = false
    private var lastReport: Int64
    public let deadline: Int64?
    public let timeouts: Timeouts

    public init(createdAt: Int64, deadline: Int64?, timeouts: Timeouts = Timeouts()) {
        history = [(.queued, createdAt)]
        notBefore = createdAt
        lastReport = createdAt
        self.deadline = deadline
        self.timeouts = timeouts
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.state == b.state && a.attempts == b.attempts && a.history.map(\.state) == b.history.map(\.state)
            && a.history.map(\.at) == b.history.map(\.at) && a.reason == b.reason
    }

    private mutating func move(_ s: ExecutionState, _ now: Int64) {
        assert(Self.canMove(from: state, to: s), "ExecutionStateMachine: \(state) → \(s) is not in the table")
        state = s
        history.append((s, now))
    }

    /// The box is online: send if queued and not backing off.
    public mutating func deliver(now: Int64) -> Action {
        guard state == .queued, now >= notBefore else { return .none }
        if let deadline, now >= deadline { move(.expired, now); return .finished(.expired) }
        attempts += 1
        confirmed = false
        lastReport = now
        move(.sent, now)
        return .send(attempt: attempts)
    }

    /// A `command_status` from the box.
    public mutating func report(_ r: BoxReport, now: Int64, progress: String? = nil, reason: String? = nil) -> Action {
        guard !state.isTerminal else { return .none }  // late or repeated reports change nothing
        lastReport = now
        confirmed = true
        if let progress { self.progress = progress }
        switch r {
        case .received:
            if state == .queued { move(.sent, now) }
            return .none
        case .inProgress:
            if state != .inProgress { move(.inProgress, now) }
            return .none
        case .succeeded:
            move(.succeeded, now)
            return .finished(.succeeded)
        case .failed:
            self.reason = reason
            move(.failed, now)
            return .finished(.failed)
        case .rejected:
            self.reason = reason
            move(.rejected, now)
            return .finished(.rejected)
        }
    }

    /// The box disconnected: an unconfirmed delivery goes back to the queue (the box runs
    /// each execution id at most once, so delivering again is safe).
    public mutating func disconnected(now: Int64) -> Action {
        guard state == .sent, !confirmed else { return .none }
        move(.queued, now)
        notBefore = now
        return .none
    }

    /// Called periodically.
    public mutating func tick(now: Int64) -> Action {
        switch state {
        case .queued:
            if let deadline, now >= deadline { move(.expired, now); return .finished(.expired) }
            return .none
        case .sent where !confirmed:
            guard now - lastReport >= timeouts.ackMillis else { return .none }
            if attempts >= timeouts.maxAttempts {
                reason = "no confirmation after \(attempts) deliveries"
                move(.timedOut, now)
                return .finished(.timedOut)
            }
            let delay = min(timeouts.retryCapMillis, timeouts.retryBaseMillis << Int64(min(attempts - 1, 20)))
            notBefore = now + delay
            move(.queued, now)
            return .none
        case .sent, .inProgress:
            guard now - lastReport >= timeouts.runMillis else { return .none }
            reason = "no report for \(timeouts.runMillis / 1000) s"
            move(.timedOut, now)
            return .finished(.timedOut)
        default:
            return .none
        }
    }

    /// An operator cancels. Idempotent: cancelling a finished execution changes nothing.
    public mutating func cancel(now: Int64) -> Action {
        switch state {
        case .queued:
            move(.canceled, now)
            return .finished(.canceled)
        case .sent, .inProgress:
            move(.canceled, now)
            return .sendCancel
        default:
            return .none
        }
    }
}

// MARK: - The transition table

extension ExecutionStateMachine {
    /// Every state change an execution may make, in memory or in the store. The machine asserts
    /// each of its own moves against it, and the store's one write path for executions
    /// (`ExecutionTransitions` in ArgusStore) takes its guard from ``sources(of:)``, so the rule
    /// "nothing leaves a terminal state" is written here once.
    ///
    /// - queued → sent (delivered; or the box's `received` arrived first), in progress and the
    ///   box's final reports, expired (deadline), canceled;
    /// - sent → queued (disconnected or no confirmation: back off and retry), sent (delivered
    ///   again: the store may not have seen the requeue before the redelivery), in progress, the
    ///   box's final reports, timed out, canceled;
    /// - in progress → in progress (a new progress stage), the box's final reports, timed out,
    ///   canceled;
    /// - a terminal state → nothing.
    public static func canMove(from: ExecutionState, to: ExecutionState) -> Bool {
        switch (from, to) {
        case (.queued, .sent), (.queued, .inProgress), (.queued, .expired): true
        case (.sent, .queued), (.sent, .sent), (.sent, .inProgress), (.sent, .timedOut): true
        case (.inProgress, .inProgress), (.inProgress, .timedOut): true
        case (.queued, .succeeded), (.queued, .failed), (.queued, .rejected), (.queued, .canceled): true
        case (.sent, .succeeded), (.sent, .failed), (.sent, .rejected), (.sent, .canceled): true
        case (.inProgress, .succeeded), (.inProgress, .failed), (.inProgress, .rejected), (.inProgress, .canceled): true
        default: false
        }
    }

    /// The states from which an execution may move to `target`, in `ExecutionState.allCases`
    /// order: the guard of every store update that moves executions to `target`.
    public static func sources(of target: ExecutionState) -> [ExecutionState] {
        ExecutionState.allCases.filter { canMove(from: $0, to: target) }
    }
}
