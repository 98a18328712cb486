import ArgusSupport
import Logging
import Metrics
import STBProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Moves sealed spool segments into the store, oldest first, and deletes them once stored.
///
/// A round reads a few segments, writes their events and logs (insertMany, duplicates
/// skipped), then their metrics (one bucket upsert per box per hour), feeds the events that
/// were new into the audience aggregator, and deletes the segments. If the store fails, the
/// segments stay and the round is retried: the spool is the buffer for a store outage. A
/// round that fails halfway is safe to repeat, because every write is keyed by
/// (box, boot, seq).
public final class TelemetryApplier: Sendable {
    public struct Configuration: Sendable {
        /// Segments per round; more segments mean fewer, larger store writes.
        public var segmentsPerRound: Int
        /// Documents per insertMany.
        public var insertChunk: Int
        public init(segmentsPerRound: Int = 8, insertChunk: Int = 1000) {
            self.segmentsPerRound = segmentsPerRound
            self.insertChunk = insertChunk
        }
    }

    /// What one round did, for metrics and benchmarks.
    public struct RoundResult: Sendable, Equatable {
        public var segments = 0
        public var records = 0
        public var messages = 0
        public var events = 0
        public var duplicateEvents = 0
        public var logs = 0
        public var samples = 0
        public var metricBuckets = 0
        /// Store documents written or upserted this round.
        public var documentsWritten = 0
        public var commandStatuses = 0
        public init() {}
    }

    let spool: Spool
    let store: any TelemetryStore
    let audience: AudienceState
    let alarms: AlarmState
    let configuration: Configuration
    let logger: Logger

    public init(
        spool: Spool, store: any TelemetryStore, audience: AudienceState, alarms: AlarmState = AlarmState(),
        configuration: Configuration = .init(), logger: Logger
    ) {
        self.spool = spool
        self.store = store
        self.audience = audience
        self.alarms = alarms
        self.configuration = configuration
        self.logger = logger
    }

    /// Applies up to `segmentsPerRound` sealed segments. Throws if the store failed; the
    /// segments are then still on disk.
    public func applyRound() async throws -> RoundResult {
        let segments = Array(spool.sealedSegments().prefix(configuration.segmentsPerRound))
        var result = RoundResult()
        guard !segments.isEmpty else { return result }
        var events: [StoredEvent] = []
        var logs: [StoredLog] = []
        var buckets: [String: MetricBucketAppend] = [:]
        var heard: [(String, Int64)] = []
        var statuses: [StoredCommandStatus] = []
        var observed: [(String, TelemetryMessage)] = []
        for seg in segments {
            let records: [SpoolRecord]
            do { records = try spool.read(seg) } catch {
                logger.error("unreadable spool segment skipped", metadata: [LogKey.spoolSegment: .string(seg.path)])
                continue
            }
            result.records += records.count
            for r in records {
                guard case .success(.telemetry(_, let messages, _)) = FrameCodec.decode(r.frame) else {
                    logger.error("spool record is not telemetry; skipped", metadata: [LogKey.stbID: .string(r.deviceID)])
                    continue
                }
                result.messages += messages.count
                var last: Int64 = 0
                for m in messages {
                    last = max(last, m.ts)
                    observed.append((r.deviceID, m))
                    switch m.body {
                    case .event(let e):
                        events.append(
                            StoredEvent(
                                deviceID: r.deviceID, bootId: r.bootId, seq: m.seq, ts: m.ts, receivedAt: r.receivedAt, clockOffsetMs: r.clockOffsetMs,
                                event: e))
                    case .log(let l):
                        logs.append(StoredLog(deviceID: r.deviceID, bootId: r.bootId, seq: m.seq, ts: m.ts, receivedAt: r.receivedAt, line: l))
                    case .commandStatus(let c):
                        statuses.append(StoredCommandStatus(deviceID: r.deviceID, seq: m.seq, ts: m.ts, receivedAt: r.receivedAt, status: c))
                    case .metrics(let s):
                        let hour = MetricBucketAppend.hour(of: m.ts)
                        let key = "\(r.deviceID)|\(r.bootId)|\(hour)"
                        buckets[key, default: MetricBucketAppend(deviceID: r.deviceID, bootId: r.bootId, hourStart: hour, samples: [])]
                            .samples.append(StoredSample(bootId: r.bootId, seq: m.seq, ts: m.ts, metrics: s))
                    }
                }
                heard.append((r.deviceID, last))
            }
        }
        var fresh: [StoredEvent] = []
        for chunk in stride(from: 0, to: events.count, by: configuration.insertChunk) {
            let part = Array(events[chunk..<min(events.count, chunk + configuration.insertChunk)])
            let isNew = try await store.insertEvents(part)
            for (e, n) in zip(part, isNew) where n { fresh.append(e) }
        }
        for chunk in stride(from: 0, to: logs.count, by: configuration.insertChunk) {
            try await store.insertLogs(Array(logs[chunk..<min(logs.count, chunk + configuration.insertChunk)]))
        }
        let appends = buckets.values.map { b -> MetricBucketAppend in
            var b = b
            // In seq order, and once each: a resend can sit in the same round as the original.
            b.samples.sort { $0.seq < $1.seq }
            var seen = Set<Int64>()
            b.samples = b.samples.filter { seen.insert($0.seq).inserted }
            return b
        }
        for chunk in stride(from: 0, to: appends.count, by: configuration.insertChunk) {
            try await store.appendMetrics(Array(appends[chunk..<min(appends.count, chunk + configuration.insertChunk)]))
        }
        if !statuses.isEmpty { try await store.applyCommandStatuses(statuses) }
        audience.update { agg in
            for e in fresh.sorted(by: { $0.ts < $1.ts }) { agg.apply(e.deviceID, e.event, at: e.ts) }
            for (d, t) in heard { agg.heard(d, at: t) }
        }
        alarms.observe(observed)
        try await alarms.flush(to: store)
        for seg in segments { spool.remove(seg) }
        result.segments = segments.count
        result.events = events.count
        result.duplicateEvents = events.count - fresh.count
        result.logs = logs.count
        result.samples = appends.reduce(0) { $0 + $1.samples.count }
        result.metricBuckets = appends.count
        result.commandStatuses = statuses.count
        result.documentsWritten = fresh.count + logs.count + appends.count + statuses.count
        return result
    }
}

/// The node's alarm evaluator behind a lock, with the changes not yet written.
public final class AlarmState: Sendable {
    /// Most alarm changes kept while the store is down; past it the oldest are dropped (a
    /// store outage long enough to need that would have made them stale anyway).
    public static let pendingLimit = 100_000
    private let evaluator: Mutex<AlarmEvaluator>
    private let pending: PendingWrites<AlarmChange>
    /// Called with every change once it is stored (for live views).
    public let onStored: (@Sendable ([AlarmChange]) -> Void)?

    public init(_ evaluator: AlarmEvaluator = AlarmEvaluator(), onStored: (@Sendable ([AlarmChange]) -> Void)? = nil) {
        self.evaluator = Mutex(evaluator)
        let dropped = Counter(label: "argus_alarm_changes_dropped_total")
        self.pending = PendingWrites(limit: Self.pendingLimit, onDrop: { n in dropped.increment(by: Int64(n)) })
        self.onStored = onStored
    }

    /// Feeds messages in order; changes queue until ``flush(to:)``.
    public func observe(_ messages: [(String, TelemetryMessage)]) {
        let changes = evaluator.withLock { e -> [AlarmChange] in
            var out: [AlarmChange] = []
            for (device, m) in messages {
                switch m.body {
                case .metrics(let s): out += e.metrics(device, s, at: m.ts)
                case .event(let ev): out += e.event(device, ev, at: m.ts)
                case .log, .commandStatus: break
                }
            }
            return out
        }
        pending.submit(contentsOf: changes)
    }

    public func add(_ changes: [AlarmChange]) { pending.submit(contentsOf: changes) }

    /// Writes queued changes; on failure they stay queued.
    public func flush(to store: any TelemetryStore) async throws {
        let batch = pending.take()
        guard !batch.isEmpty else { return }
        do {
            try await store.applyAlarms(batch, now: currentMillis())
        } catch {
            pending.putBack(batch)
            throw error
        }
        onStored?(batch)
    }
}

func currentMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// The node's audience aggregator behind a lock, shared by the applier and the minute flusher.
public final class AudienceState: Sendable {
    private let aggregator: Mutex<AudienceAggregator>

    public init(_ aggregator: AudienceAggregator = AudienceAggregator()) { self.aggregator = Mutex(aggregator) }

    public func update<T>(_ body: (inout AudienceAggregator) -> T) -> T {
        aggregator.withLock { body(&$0) }
    }
}
