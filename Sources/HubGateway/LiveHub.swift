import ArgusStore
import ArgusSupport
import Atomics
import Foundation
import Metrics
import NIOConcurrencyHelpers
import STBProtocol
import ServiceLifecycle
import Synchronization

/// Fans telemetry out to operators' live views (`/api/v1/live`).
///
/// Each subscriber has a bounded queue. A subscriber that falls `queueLimit` frames behind is
/// dropped (its socket is closed with 1008), so a slow console never slows ingest: publishing
/// is a dictionary lookup and a non-blocking enqueue, and nothing at all when nobody watches.
package final class LiveHub: Sendable {
    package typealias Stream = AsyncStream<String>
    private struct Subscriber {
        var continuation: Stream.Continuation
        /// Set when the subscriber is dropped; its socket task then skips the backlog and
        /// sends the 1008 close next, so the close is not queued behind stale frames.
        var dropped: ManagedAtomic<Bool>
    }
    /// One live-view subscription.
    package struct Subscription: Sendable {
        package let id: UInt64
        package let stream: Stream
        fileprivate let droppedFlag: ManagedAtomic<Bool>
        /// True once the hub dropped this subscriber for being too slow.
        package var isDropped: Bool { droppedFlag.load(ordering: .relaxed) }
    }
    private struct State {
        var byDevice: [String: [UInt64: Subscriber]] = [:]
        var fleet: [UInt64: Subscriber] = [:]
        var nextID: UInt64 = 1
    }
    private let state = Mutex(State())
    private let deviceSubscribers = ManagedAtomic<Int>(0)
    package let queueLimit: Int
    package let dropped = ManagedAtomic<Int>(0)
    private let droppedCounter = Counter(label: "argus_live_subscribers_dropped_total")

    package init(queueLimit: Int = 256) { self.queueLimit = queueLimit }

    package enum Topic: Equatable { case device(String), fleet }

    /// A new subscription; finish the returned stream's consumer to unsubscribe.
    package func subscribe(_ topic: Topic) -> Subscription {
        let (stream, cont) = Stream.makeStream(bufferingPolicy: .bufferingOldest(queueLimit))
        let flag = ManagedAtomic(false)
        let sub = Subscriber(continuation: cont, dropped: flag)
        let id = state.withLock { s -> UInt64 in
            let id = s.nextID
            s.nextID += 1
            switch topic {
            case .device(let d): s.byDevice[d, default: [:]][id] = sub
            case .fleet: s.fleet[id] = sub
            }
            return id
        }
        if case .device = topic { deviceSubscribers.wrappingIncrement(ordering: .relaxed) }
        cont.onTermination = { [weak self] _ in self?.unsubscribe(id, topic) }
        return Subscription(id: id, stream: stream, droppedFlag: flag)
    }

    private func unsubscribe(_ id: UInt64, _ topic: Topic) {
        let removed = state.withLock { s -> Bool in
            switch topic {
            case .device(let d):
                guard s.byDevice[d]?.removeValue(forKey: id) != nil else { return false }
                if s.byDevice[d]?.isEmpty == true { s.byDevice[d] = nil }
                return true
            case .fleet:
                return s.fleet.removeValue(forKey: id) != nil
            }
        }
        if removed, case .device = topic { deviceSubscribers.wrappingDecrement(ordering: .relaxed) }
    }

    /// True when some operator watches some box; lets the hot path skip building messages.
    package var anyDeviceSubscribers: Bool { deviceSubscribers.load(ordering: .relaxed) > 0 }

    /// Publishes one accepted telemetry frame of a box.
    package func publishTelemetry(device: String, bootId: String, frame: [UInt8]) {
        guard anyDeviceSubscribers else { return }
        let subs = state.withLock { $0.byDevice[device].map { Array($0.values) } } ?? []
        guard !subs.isEmpty else { return }
        var out = Array("{\"type\":\"telemetry\",\"device\":".utf8)
        JSONWriter.appendString(device, to: &out)
        out.append(contentsOf: Array(",\"bootId\":".utf8))
        JSONWriter.appendString(bootId, to: &out)
        out.append(contentsOf: Array(",\"frame\":".utf8))
        out.append(contentsOf: frame)
        out.append(UInt8(ascii: "}"))
        deliver(String(decoding: out, as: UTF8.self), to: subs)
    }

    /// Publishes a message to every fleet subscriber.
    package func publishFleet(_ text: String) {
        let subs = state.withLock { Array($0.fleet.values) }
        deliver(text, to: subs)
    }

    private func deliver(_ text: String, to subs: [Subscriber]) {
        for s in subs {
            if case .dropped = s.continuation.yield(text) {
                // Too slow: end its stream; the socket task closes it with 1008.
                if s.dropped.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
                    dropped.wrappingIncrement(ordering: .relaxed)
                    droppedCounter.increment()
                }
                s.continuation.finish()
            }
        }
    }
}

/// Sends fleet-wide counters to fleet subscribers once a second.
package struct FleetTicker: Service {
    package let live: LiveHub
    package let registry: ConnectionRegistry
    package let ingest: TelemetryIngest
    package let node: String

    package init(live: LiveHub, registry: ConnectionRegistry, ingest: TelemetryIngest, node: String) {
        self.live = live
        self.registry = registry
        self.ingest = ingest
        self.node = node
    }

    package func run() async throws {
        var lastAccepted = ingest.acceptedCount
        var lastAcked = ingest.ackedCount
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            let accepted = ingest.acceptedCount, acked = ingest.ackedCount
            var w = JSONWriter(capacity: 200)
            w.beginObject()
            w.string("type", "fleet")
            w.string("node", node)
            w.int("ts", Int64(Date().timeIntervalSince1970 * 1000))
            w.int("sessions", registry.activeCount)
            let presence = registry.presenceCounts
            w.int("connects", presence.connects)
            w.int("disconnects", presence.disconnects)
            w.int("acceptedPerSec", accepted - lastAccepted)
            w.int("ackedPerSec", acked - lastAcked)
            w.int("spoolBytes", ingest.spool.bytesOnDisk)
            w.int("liveDropped", live.dropped.load(ordering: .relaxed))
            w.endObject()
            live.publishFleet(String(decoding: w.bytes, as: UTF8.self))
            lastAccepted = accepted
            lastAcked = acked
        }
    }
}
