import Synchronization
import Telemetry

/// The telemetry store as memory: records what the applier asks of it, and dedupes events by
/// key as the real store's unique `_id` does. For applier tests without a database.
public final class InMemoryTelemetryStore: TelemetryStore, Sendable {
    public struct Recorded: Sendable {
        public var buckets: [MetricBucketAppend] = []
        public var events: [StoredEvent] = []
        public var eventKeys = Set<String>()
        public var logs: [StoredLog] = []
        public var audience: [AudienceCount] = []
        public var alarms: [AlarmChange] = []
        public var statuses: [StoredCommandStatus] = []
    }
    private let state = Mutex(Recorded())

    public init() {}

    public var recorded: Recorded { state.withLock { $0 } }
    public var buckets: [MetricBucketAppend] { recorded.buckets }
    public var statuses: [StoredCommandStatus] { recorded.statuses }

    public func insertEvents(_ list: [StoredEvent]) async throws -> [Bool] {
        state.withLock { s in
            list.map { e in
                s.events.append(e)
                return s.eventKeys.insert(e.key).inserted
            }
        }
    }
    public func insertLogs(_ logs: [StoredLog]) async throws { state.withLock { $0.logs += logs } }
    public func appendMetrics(_ b: [MetricBucketAppend]) async throws { state.withLock { $0.buckets += b } }
    public func addAudience(_ counts: [AudienceCount]) async throws { state.withLock { $0.audience += counts } }
    public func applyAlarms(_ changes: [AlarmChange], now: Int64) async throws { state.withLock { $0.alarms += changes } }
    public func applyCommandStatuses(_ s: [StoredCommandStatus]) async throws { state.withLock { $0.statuses += s } }
}
