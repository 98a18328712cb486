import STBProtocol

/// A viewing or app event as stored (one document each; `_id` = device|boot|seq).
public struct StoredEvent: Sendable, Equatable {
    public var deviceID: String
    public var bootId: String
    public var seq: Int64
    public var ts: Int64
    public var receivedAt: Int64
    /// The session's clock offset (hub time of `hello` − its `ts`); nil if not known.
    public var clockOffsetMs: Int64?
    public var event: ViewingEvent

    public init(deviceID: String, bootId: String, seq: Int64, ts: Int64, receivedAt: Int64, clockOffsetMs: Int64? = nil, event: ViewingEvent) {
        self.deviceID = deviceID; self.bootId = bootId; self.seq = seq; self.ts = ts; self.receivedAt = receivedAt
        self.clockOffsetMs = clockOffsetMs; self.event = event
    }

    /// The dedupe key: a resent message has the same one.
    public var key: String { "\(deviceID)|\(bootId)|\(seq)" }
}

/// A log line as stored (one document each; `_id` = device|boot|seq).
public struct StoredLog: Sendable, Equatable {
    public var deviceID: String
    public var bootId: String
    public var seq: Int64
    public var ts: Int64
    public var receivedAt: Int64
    public var line: LogLine

    public init(deviceID: String, bootId: String, seq: Int64, ts: Int64, receivedAt: Int64, line: LogLine) {
        self.deviceID = deviceID; self.bootId = bootId; self.seq = seq; self.ts = ts; self.receivedAt = receivedAt; self.line = line
    }
    public var key: String { "\(deviceID)|\(bootId)|\(seq)" }
}

/// One heartbeat sample inside a metrics bucket.
public struct StoredSample: Sendable, Equatable {
    public var bootId: String
    public var seq: Int64
    public var ts: Int64
    public var metrics: MetricsSample

    public init(bootId: String, seq: Int64, ts: Int64, metrics: MetricsSample) {
        self.bootId = bootId; self.seq = seq; self.ts = ts; self.metrics = metrics
    }
}

/// Samples to add to one box's bucket for one boot and hour (`_id` = device|boot|hourStart).
/// `samples` are in `seq` order.
public struct MetricBucketAppend: Sendable, Equatable {
    public var deviceID: String
    public var bootId: String
    /// The bucket's start, ms since the epoch, a whole hour.
    public var hourStart: Int64
    public var samples: [StoredSample]

    public init(deviceID: String, bootId: String, hourStart: Int64, samples: [StoredSample]) {
        self.deviceID = deviceID; self.bootId = bootId; self.hourStart = hourStart; self.samples = samples
    }

    public var key: String { "\(deviceID)|\(bootId)|\(hourStart)" }

    public static let bucketMillis: Int64 = 3_600_000
    public static func hour(of ts: Int64) -> Int64 { ts - ((ts % bucketMillis) + bucketMillis) % bucketMillis }
}

/// Viewing in one channel in one minute, from one hub node; nodes' counts add up.
public struct AudienceCount: Sendable, Equatable {
    public var channel: String
    /// The minute's start, ms since the epoch.
    public var minute: Int64
    /// Boxes that watched the channel during the minute (at least one second).
    public var viewers: Int
    /// Seconds watched, summed over boxes; `seconds / 60` is the minute's average audience.
    public var seconds: Double
    /// Boxes that reported a playback error on the channel during the minute.
    public var errorBoxes: Int

    public init(channel: String, minute: Int64, viewers: Int, seconds: Double, errorBoxes: Int) {
        self.channel = channel; self.minute = minute; self.viewers = viewers; self.seconds = seconds; self.errorBoxes = errorBoxes
    }
}

/// What the applier needs from the store. ControlServer implements it with MongoStore;
/// every operation is idempotent for a resent message except where noted.
/// A box's `command_status`, applied to its execution (`_id` = ref|device).
public struct StoredCommandStatus: Sendable, Equatable {
    public var deviceID: String
    public var seq: Int64
    public var ts: Int64
    public var receivedAt: Int64
    public var status: CommandStatus

    public init(deviceID: String, seq: Int64, ts: Int64, receivedAt: Int64, status: CommandStatus) {
        self.deviceID = deviceID; self.seq = seq; self.ts = ts; self.receivedAt = receivedAt; self.status = status
    }
    /// The execution's key.
    public var executionID: String { "\(status.ref)|\(deviceID)" }
}

public protocol TelemetryStore: Sendable {
    /// Applies boxes' command reports to their executions, in seq order per execution. A
    /// report never moves an execution out of a terminal state, so applying twice is harmless.
    func applyCommandStatuses(_ statuses: [StoredCommandStatus]) async throws
    /// Inserts events; returns, per event, whether it was new (false: already stored).
    func insertEvents(_ events: [StoredEvent]) async throws -> [Bool]
    /// Inserts log lines; duplicates are skipped.
    func insertLogs(_ logs: [StoredLog]) async throws
    /// Adds samples to hourly buckets; a sample already in its bucket is not added twice.
    func appendMetrics(_ buckets: [MetricBucketAppend]) async throws
    /// Adds audience counts (`$inc`). Not idempotent: the applier calls it once per closed minute.
    func addAudience(_ counts: [AudienceCount]) async throws
    /// Raises (idempotent: one active alarm per key) and clears alarms, at `now` (ms).
    func applyAlarms(_ changes: [AlarmChange], now: Int64) async throws
}
