import Atomics
import Foundation
import NIOConcurrencyHelpers
import ServiceLifecycle
import STBProtocol

/// Fans telemetry out to operators' live views (`/api/v1/live`).
///
/// Each subscriber has a bounded queue. A subscriber that falls `queueLimit` frames behind is
/// dropped (its socket is closed with 1008), so a slow console never slows ingest: publishing
/// is a dictionary lookup and a non-blocking enqueue, and nothing at all when nobody watches.
final class LiveHub: Sendable {
    typealias Stream = AsyncStream<String>
    private struct Subscriber { var continuation: Stream.Continuation }
    private struct State {
        var byDevice: [String: [UInt64: Subscriber]] = [:]
        var fleet: [UInt64: Subscriber] = [:]
        var nextID: UInt64 = 1
    }
    private let state = NIOLockedValueBox(State())
    private let deviceSubscribers = ManagedAtomic<Int>(0)
    let queueLimit: Int
    let dropped = ManagedAtomic<Int>(0)

    init(queueLimit: Int = 256) { self.queueLimit = queueLimit }

    enum Topic: Equatable { case device(String), fleet }

    /// A new subscription; finish the returned stream's consumer to unsubscribe.
    func subscribe(_ topic: Topic) -> (id: UInt64, stream: Stream) {
        var cont: Stream.Continuation!
        let stream = Stream(bufferingPolicy: .bufferingOldest(queueLimit)) { cont = $0 }
        let id = state.withLockedValue { s -> UInt64 in
            let id = s.nextID
            s.nextID += 1
            switch topic {
            case .device(let d): s.byDevice[d, default: [:]][id] = Subscriber(continuation: cont)
            case .fleet: s.fleet[id] = Subscriber(continuation: cont)
            }
            return id
        }
        if case .device = topic { deviceSubscribers.wrappingIncrement(ordering: .relaxed) }
        let c = cont!
        c.onTermination = { [weak self] _ in self?.unsubscribe(id, topic) }
        return (id, stream)
    }

    private func unsubscribe(_ id: UInt64, _ topic: Topic) {
        let removed = state.withLockedValue { s -> Bool in
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
    var anyDeviceSubscribers: Bool { deviceSubscribers.load(ordering: .relaxed) > 0 }

    /// Publishes one accepted telemetry frame of a box.
    func publishTelemetry(device: String, bootId: String, frame: [UInt8]) {
        guard anyDeviceSubscribers else { return }
        let subs = state.withLockedValue { $0.byDevice[device].map { Array($0.values) } } ?? []
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
    func publishFleet(_ text: String) {
        let subs = state.withLockedValue { Array($0.fleet.values) }
        deliver(text, to: subs)
    }

    private func deliver(_ text: String, to subs: [Subscriber]) {
        for s in subs {
            if case .dropped = s.continuation.yield(text) {
                // Too slow: end its stream; the socket task closes it with 1008.
                dropped.wrappingIncrement(ordering: .relaxed)
                s.continuation.finish()
            }
        }
    }
}

/// Sends fleet-wide counters to fleet subscribers once a second.
struct FleetTicker: Service {
    let live: LiveHub
    let registry: ConnectionRegistry
    let ingest: TelemetryIngest
    let node: String

    func run() async throws {
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
