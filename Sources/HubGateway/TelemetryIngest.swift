import ArgusStore
import ArgusSupport
import Atomics
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import Telemetry

/// The gateway's side of telemetry: appends accepted frames to the spool and pauses or
/// resumes reading from boxes as the spool fills and drains (backpressure instead of memory).
package final class TelemetryIngest: Sendable {
    package let spool: Spool
    /// Messages per second per box, and the burst a box may send at once.
    package let messagesPerSecond: Int
    package let burst: Int
    private let paused = Mutex<[String: SessionHandle]>([:])
    package let accepted = Counter(label: "argus_telemetry_messages_accepted_total")
    package let acked = Counter(label: "argus_telemetry_messages_acked_total")
    package let rateLimited = Counter(label: "argus_telemetry_messages_rate_limited_total")
    package let pauses = Counter(label: "argus_telemetry_read_pauses_total")
    /// Frames refused because the spool was full (the box is closed with 1013 and resends later).
    package let spoolFull = Counter(label: "argus_telemetry_spool_full_total")
    private let acceptedTotal = ManagedAtomic<Int>(0)
    private let ackedTotal = ManagedAtomic<Int>(0)
    /// Operators' live views; told about every accepted frame.
    package let live: LiveHub

    package var acceptedCount: Int { acceptedTotal.load(ordering: .relaxed) }
    package var ackedCount: Int { ackedTotal.load(ordering: .relaxed) }

    package func countAccepted(_ n: Int) { acceptedTotal.wrappingIncrement(by: n, ordering: .relaxed); accepted.increment(by: Int64(n)) }
    package func countAcked(_ n: Int) { ackedTotal.wrappingIncrement(by: n, ordering: .relaxed); acked.increment(by: Int64(n)) }

    package init(spool: Spool, messagesPerSecond: Int, burst: Int, live: LiveHub = LiveHub()) {
        self.spool = spool
        self.live = live
        self.messagesPerSecond = messagesPerSecond
        self.burst = burst
        spool.onResume { [weak self] in
            guard let self else { return }
            let handles = self.paused.withLock { p -> [SessionHandle] in
                defer { p = [:] }; return Array(p.values)
            }
            SessionHandle.forEach(handles) { $0.resumeReading() }
        }
    }

    /// A handler stopped reading; it is resumed when the spool drains.
    package func pause(_ h: SessionHandle) {
        pauses.increment()
        paused.withLock { $0[h.id] = h }
    }

    package func forget(_ h: SessionHandle) { _ = paused.withLock { $0.removeValue(forKey: h.id) } }
}
