import Foundation
import Logging
import Metrics
import MongoStore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import ServiceLifecycle
import STBProtocol
import Synchronization

/// Settings of the device gateway.
struct GatewayConfiguration: Sendable {
    var host = "127.0.0.1"
    var port = 8081
    var heartbeatSeconds = 30
    var helloTimeout: TimeAmount = .seconds(10)
    var handshakeTimeout: TimeAmount = .seconds(10)
    /// Silence after which the hub pings a box; defaults to one heartbeat interval.
    var pingAfter: TimeAmount?
    /// Silence after which the hub closes the session (4002).
    var idleTimeout: TimeAmount?
    var limits = Limits()
    /// Live sessions allowed; nil derives the cap from the descriptor limit.
    var maxConnections: Int?
    /// Descriptors kept free for everything that is not a box.
    var reservedDescriptors = 256
    /// Sockets above the cap that may be answered 503 at once.
    var rejectBudget = 256
    var retryAfterSeconds = 30
    /// How long draining waits for boxes to go.
    var drainTimeout: TimeAmount = .seconds(5)

    var timing: SessionStateMachine.Timing {
        let hb = TimeAmount.seconds(Int64(heartbeatSeconds))
        return .init(helloTimeout: helloTimeout, pingAfter: pingAfter ?? hb,
                     idleTimeout: idleTimeout ?? .nanoseconds(hb.nanoseconds * 5 / 2))
    }
}

/// Checks a box's credentials against the `devices` collection.
///
/// The store is always asked first. Only when it cannot answer does the authenticator fall
/// back to the secret hashes it verified in the last `fallbackTTL`, so that boxes already
/// known to this node can reconnect through a store outage (their telemetry goes to the
/// spool). A box revoked here is dropped from the fallback at once; a revocation on another
/// node during an outage takes effect when the store answers again.
final class DeviceAuthenticator: Sendable {
    let devices: DeviceRepository
    let fallbackTTL: Duration
    let fallbackLimit: Int
    private let recent = Mutex<[String: (hash: String, at: ContinuousClock.Instant)]>([:])

    init(devices: DeviceRepository, fallbackTTL: Duration = .seconds(3600), fallbackLimit: Int = 100_000) {
        self.devices = devices
        self.fallbackTTL = fallbackTTL
        self.fallbackLimit = fallbackLimit
    }

    enum Outcome: Sendable, Equatable { case accepted, rejected, storeUnavailable }

    func verify(id: String, secret: String) async -> Outcome {
        guard id.utf8.count <= 64 else { return .rejected }
        do {
            guard let hash = try await devices.credentials(id) else {
                forget(id)
                // Spend the same hashing work for unknown ids as for known ones.
                _ = Secrets.verify(secret, against: "sha256:")
                return .rejected
            }
            guard Secrets.verify(secret, against: hash) else { return .rejected }
            remember(id, hash)
            return .accepted
        } catch {
            let now = ContinuousClock.now
            guard let known = recent.withLock({ $0[id] }), now - known.at < fallbackTTL else { return .storeUnavailable }
            return Secrets.verify(secret, against: known.hash) ? .accepted : .rejected
        }
    }

    private func remember(_ id: String, _ hash: String) {
        recent.withLock { r in
            if r.count >= fallbackLimit, r[id] == nil, let victim = r.keys.first { r[victim] = nil }
            r[id] = (hash, .now)
        }
    }

    /// Drops a box from the fallback (revoked or deleted).
    func forget(_ id: String) { _ = recent.withLock { $0.removeValue(forKey: id) } }
}

/// The device-facing WebSocket server on `/v1/stb`.
///
/// A plain SwiftNIO pipeline rather than Hummingbird's WebSocket router: one handler object
/// per connection, no Swift task per connection, a small receive buffer and one read per
/// wake-up. That is what holds idle sessions at a few KB each (docs/benchmarks.md).
final class DeviceGateway: Service, Sendable {
    let configuration: GatewayConfiguration
    let capacity: ConnectionCapacity
    let shared: GatewayContext
    private let group: EventLoopGroup
    private let authenticator: DeviceAuthenticator
    private let ready: ReadinessGate
    private let draining = NIOLockedBool()
    private let logger: Logger
    private let boundPort = NIOLockedInt()
    private let upgrades = Counter(label: "argus_gateway_handshakes_total")
    private let refusals = Counter(label: "argus_gateway_refused_total")
    private let sessionsGauge = Gauge(label: "argus_gateway_sessions")
    private let socketsGauge = Gauge(label: "argus_gateway_sockets")

    init(configuration: GatewayConfiguration, capacity: ConnectionCapacity, shared: GatewayContext, group: EventLoopGroup,
         authenticator: DeviceAuthenticator, ready: ReadinessGate, logger: Logger) {
        self.configuration = configuration
        self.capacity = capacity
        self.shared = shared
        self.group = group
        self.authenticator = authenticator
        self.ready = ready
        self.logger = logger
    }

    /// The port actually bound (useful with port 0).
    var port: Int { boundPort.value }

    func run() async throws {
        // Boxes are only let in once the store answers and the indexes exist.
        guard await ready.wait() else { return }
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65536))
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 16 * 1024, high: 64 * 1024))
            .childChannelInitializer { [self] channel in self.initialize(channel) }
            .bind(host: configuration.host, port: configuration.port).get()
        boundPort.value = server.localAddress?.port ?? configuration.port
        logger.info("device gateway listening", metadata: [
            "gateway.url": .string("ws://\(configuration.host):\(port)\(STBProtocol.path)"),
            "gateway.cap": .stringConvertible(capacity.cap),
        ])

        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.sweepUntilShutdown() }
            await cancelWhenGracefulShutdown { try? await gracefulShutdown() }
            await drain(server: server)
            tasks.cancelAll()
        }
    }

    /// Closes the listener, tells every box 1001, waits for them to go, and marks this node's boxes offline.
    private func drain(server: Channel) async {
        draining.value = true
        try? await server.close()
        let sessions = shared.registry.snapshot()
        logger.info("draining device gateway", metadata: ["sessions": .stringConvertible(sessions.count)])
        for s in sessions { s.eventLoop.execute { s.close(.goingAway) } }
        let deadline = NIODeadline.now() + configuration.drainTimeout
        while shared.registry.sessionCount > 0 && NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        do {
            try await shared.presence.flush()
            let n = try await shared.presence.markNodeOffline()
            logger.info("device gateway drained", metadata: ["presence.offline": .stringConvertible(n)])
        } catch {
            logger.error("could not record presence while draining", metadata: ["error": .string("\(error)")])
        }
    }

    /// Walks every session on its own event loop, a few times per ping interval.
    private func sweepUntilShutdown() async {
        let interval = Duration.nanoseconds(max(configuration.timing.pingAfter.nanoseconds / 3, 50_000_000))
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = NIODeadline.now()
            sessionsGauge.record(shared.registry.activeCount)
            socketsGauge.record(capacity.current)
            var byLoop: [ObjectIdentifier: (EventLoop, [STBConnectionHandler])] = [:]
            for h in shared.registry.snapshot() {
                byLoop[ObjectIdentifier(h.eventLoop), default: (h.eventLoop, [])].1.append(h)
            }
            for (_, (loop, handlers)) in byLoop {
                loop.execute { for h in handlers { h.sweep(now: now) } }
            }
        }
    }

    private func initialize(_ channel: Channel) -> EventLoopFuture<Void> {
        let admission = capacity.acquire()
        channel.closeFuture.whenComplete { [capacity] _ in capacity.release() }
        if admission == .drop || draining.value && admission != .admit {
            refusals.increment()
            return channel.close()
        }
        let state = HandshakeState(overCapacity: admission == .overCapacity)
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: configuration.limits.maxFrameBytes * 4,
            automaticErrorHandling: true,
            shouldUpgrade: { [self] channel, head in self.shouldUpgrade(channel, head, state) },
            upgradePipelineHandler: { [self] channel, head in self.upgraded(channel, head, state) }
        )
        let responder = HandshakeResponder(state: state, retryAfterSeconds: configuration.retryAfterSeconds,
                                           timeout: configuration.handshakeTimeout)
        return channel.pipeline.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
            withErrorHandling: true
        ).flatMap {
            channel.pipeline.addHandler(responder, name: HandshakeResponder.name)
        }
    }

    private func shouldUpgrade(_ channel: Channel, _ head: HTTPRequestHead, _ state: HandshakeState) -> EventLoopFuture<HTTPHeaders?> {
        let loop = channel.eventLoop
        func refuse(_ r: HandshakeRejection) -> EventLoopFuture<HTTPHeaders?> {
            state.rejection = r
            refusals.increment()
            return loop.makeSucceededFuture(nil)
        }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard path == STBProtocol.path else { return refuse(.notFound) }
        if state.overCapacity { return refuse(.overCapacity) }
        if draining.value { return refuse(.draining) }
        guard let auth = head.headers.first(name: "Authorization"), let creds = Secrets.parseBasic(auth) else {
            return refuse(.unauthorized)
        }
        let authenticator = self.authenticator
        return loop.makeFutureWithTask {
            await authenticator.verify(id: creds.id, secret: creds.secret)
        }.flatMap { outcome in
            switch outcome {
            case .accepted:
                state.deviceID = creds.id
                return loop.makeSucceededFuture(HTTPHeaders())
            case .rejected: return refuse(.unauthorized)
            case .storeUnavailable: return refuse(.storeUnavailable)
            }
        }
    }

    private func upgraded(_ channel: Channel, _ head: HTTPRequestHead, _ state: HandshakeState) -> EventLoopFuture<Void> {
        upgrades.increment()
        let handler = STBConnectionHandler(deviceID: state.deviceID ?? "", remoteAddress: channel.remoteAddress?.ipAddress,
                                           eventLoop: channel.eventLoop, shared: shared)
        return channel.pipeline.removeHandler(name: HandshakeResponder.name).flatMap {
            channel.pipeline.addHandler(handler)
        }
    }
}

/// A lock-protected Bool.
final class NIOLockedBool: Sendable {
    private let box = Mutex(false)
    var value: Bool {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }
}

/// A lock-protected Int.
final class NIOLockedInt: Sendable {
    private let box = Mutex(0)
    var value: Int {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }
}
