import ArgusStore
import ArgusSupport
import CommandRuntime
import Foundation
import HubAPI
import HubGateway
import Logging
import Metrics
import MongoStore
import ServiceLifecycle
import Telemetry

/// Applies the spool to the store and flushes audience counters each minute.
///
/// While the store is down, rounds fail and the spool grows (bounded; boxes are slowed and
/// then refused before it overflows); when the store returns, segments are applied oldest
/// first. On shutdown the spool is synced and sealed; what was not applied yet is applied by
/// the next start.
package final class TelemetryService: Service, Sendable {
    package let applier: TelemetryApplier
    package let spool: Spool
    package let audience: AudienceState
    package let store: any TelemetryStore
    package let gate: ReadinessGate
    package let logger: Logger
    /// How long after a minute ends its counters are written (late events still count).
    package let audienceGrace: Duration
    /// Raise an offline alarm for a box offline longer than this; nil turns the check off.
    package let offlineAfter: Duration?
    package let alarms: AlarmState
    package let alarmRepository: AlarmRepository?
    /// Audience counts waiting to be written; bounded (the oldest dropped, counted and logged)
    /// so an endless store outage cannot grow it without limit. The raw events stay in the
    /// store, so lost counters can be recomputed.
    private let pendingAudience: PendingWrites<AudienceCount>
    package static let audienceLimit = 500_000
    private let applied = Counter(label: "argus_telemetry_messages_applied_total")
    private let documents = Counter(label: "argus_telemetry_store_documents_total")
    private let spoolBytes = Gauge(label: "argus_telemetry_spool_bytes")

    package init(
        applier: TelemetryApplier, spool: Spool, audience: AudienceState, store: any TelemetryStore, gate: ReadinessGate,
        audienceGrace: Duration = .seconds(90), offlineAfter: Duration? = nil, alarms: AlarmState = AlarmState(),
        alarmRepository: AlarmRepository? = nil, logger: Logger
    ) {
        self.offlineAfter = offlineAfter
        self.alarms = alarms
        self.alarmRepository = alarmRepository
        self.applier = applier
        self.spool = spool
        self.audience = audience
        self.store = store
        self.gate = gate
        self.audienceGrace = audienceGrace
        self.logger = logger
        let dropped = Counter(label: "argus_audience_counts_dropped_total")
        let log = RateLimitedLog()
        pendingAudience = PendingWrites(
            limit: Self.audienceLimit,
            onDrop: { n in
                dropped.increment(by: Int64(n))
                log.event { folded in
                    logger.warning(
                        "audience counts dropped: the store is behind",
                        metadata: [LogKey.dropped: .stringConvertible(n), LogKey.dropsFolded: .stringConvertible(folded)])
                }
            })
    }

    package func run() async throws {
        let ready = await cancelWhenGracefulShutdown { await self.gate.wait() }
        if ready == true {
            await cancelWhenGracefulShutdown { await self.loop() }
        }
        spool.shutdown()
        logger.info("spool closed", metadata: [LogKey.spoolBytes: .stringConvertible(spool.bytesOnDisk)])
    }

    private func loop() async {
        var backoff = Duration.milliseconds(200)
        var lastAudience = ContinuousClock.now
        var lastOfflineCheck = ContinuousClock.now
        var failing = false
        while !Task.isCancelled {
            spoolBytes.record(spool.bytesOnDisk)
            do {
                let r = try await applier.applyRound()
                applied.increment(by: Int64(r.messages))
                documents.increment(by: Int64(r.documentsWritten))
                if failing {
                    logger.notice("store writes resumed", metadata: [LogKey.spoolBytes: .stringConvertible(spool.bytesOnDisk)])
                    failing = false
                }
                backoff = .milliseconds(200)
                if ContinuousClock.now - lastAudience >= .seconds(10) {
                    try await flushAudience()
                    lastAudience = .now
                }
                if let after = offlineAfter, let repo = alarmRepository,
                    ContinuousClock.now - lastOfflineCheck >= min(.seconds(30), after / 2)
                {
                    alarms.add(try await repo.offlineChanges(after: Double(after.components.seconds), now: Date()))
                    try await alarms.flush(to: store)
                    lastOfflineCheck = .now
                }
                if r.segments == 0 { try? await Task.sleep(for: .milliseconds(100)) }
            } catch {
                if !failing {
                    logger.warning(
                        "store write failed; telemetry stays in the spool",
                        metadata: [
                            LogKey.error: .string("\(error)"), LogKey.spoolBytes: .stringConvertible(spool.bytesOnDisk),
                        ])
                    failing = true
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(10))
            }
        }
    }

    /// Writes audience counters for minutes that ended more than `audienceGrace` ago.
    package func flushAudience(now: Date = Date()) async throws {
        let cutoff = Int64((now.timeIntervalSince1970 - Double(audienceGrace.components.seconds)) * 1000)
        let closed = audience.update { $0.close(before: cutoff) }
        pendingAudience.submit(contentsOf: closed)
        let batch = pendingAudience.take()
        guard !batch.isEmpty else { return }
        do {
            try await store.addAudience(batch)
        } catch {
            pendingAudience.putBack(batch)
            throw error
        }
    }
}
