import ArgusStore
import ArgusSupport
import Foundation
import Logging
import Metrics
import MongoStore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import STBProtocol
import ServiceLifecycle
import Synchronization

/// Settings of the device gateway.
package struct GatewayConfiguration: Sendable {
    package var host = "127.0.0.1"
    package var port = 8081
    package var heartbeatSeconds = 30
    package var helloTimeout: TimeAmount = .seconds(10)
    package var handshakeTimeout: TimeAmount = .seconds(10)
    /// Silence after which the hub pings a box; defaults to one heartbeat interval.
    package var pingAfter: TimeAmount?
    /// Silence after which the hub closes the session (4002).
    package var idleTimeout: TimeAmount?
    package var limits = Limits()
    /// Live sessions allowed; nil derives the cap from the descriptor limit.
    package var maxConnections: Int?
    /// Descriptors kept free for everything that is not a box.
    package var reservedDescriptors = 256
    /// Sockets above the cap that may be answered 503 at once.
    package var rejectBudget = 256
    /// `Retry-After` base, seconds; each answer is jittered around it (see
    /// ``HandshakeRejection/retryAfter(base:)``).
    package var retryAfterSeconds = 30
    /// How long draining waits for boxes to go.
    package var drainTimeout: TimeAmount = .seconds(5)
    /// How long draining may spend writing presence (each store call has this deadline).
    package var flushTimeout: TimeAmount = .seconds(5)
    /// Credential lookups in the store at once; past it a handshake is refused at once with
    /// 503 (`verify_busy`). Derived from the store's threads by default.
    package var maxVerifications = 64
    /// A credential lookup not answered by then is refused with 503 (`verify_timeout`), well
    /// before the handshake timeout, so a box always gets an answer.
    package var verifyDeadline: TimeAmount = .seconds(4)

    package init(
        helloTimeout: TimeAmount = .seconds(10), handshakeTimeout: TimeAmount = .seconds(10), pingAfter: TimeAmount? = nil, idleTimeout: TimeAmount? = nil,
        maxConnections: Int? = nil, drainTimeout: TimeAmount = .seconds(5), flushTimeout: TimeAmount = .seconds(5), verifyDeadline: TimeAmount = .seconds(4)
    ) {
        self.helloTimeout = helloTimeout
        self.handshakeTimeout = handshakeTimeout
        self.pingAfter = pingAfter
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.drainTimeout = drainTimeout
        self.flushTimeout = flushTimeout
        self.verifyDeadline = verifyDeadline
    }
    /// Connections accepted per wake-up of the listening socket.
    package var acceptBatch = 64
    /// Failed handshakes one source address may make at once (then one a second) before it
    /// is answered 429 without any credential check.
    package var failedHandshakeBurst = 20

    package var timing: SessionStateMachine.Timing {
        let hb = TimeAmount.seconds(Int64(heartbeatSeconds))
        return .init(
            helloTimeout: helloTimeout, pingAfter: pingAfter ?? hb,
            idleTimeout: idleTimeout ?? .nanoseconds(hb.nanoseconds * 5 / 2))
    }
}

/// Checks a box's credentials: against the ``CredentialCache`` first, so a reconnecting
/// known box costs no store read; otherwise against the `devices` collection.
///
/// A box whose secret the store confirmed in the last `cache.ttl` is let in from the cache.
/// Past that, the store is asked; only when it cannot answer are entries up to
/// `cache.fallbackTTL` old used, so that known boxes reconnect through a store outage (their
/// telemetry goes to the spool). Revocations remove entries on every node
/// (``RevocationFeed``).
package final class DeviceAuthenticator: Sendable {
    package let devices: DeviceRepository
    package let cache: CredentialCache
    private let cacheHits = Counter(label: "argus_gateway_credential_cache_total", dimensions: [("result", "hit")])
    private let cacheMisses = Counter(label: "argus_gateway_credential_cache_total", dimensions: [("result", "miss")])

    package init(devices: DeviceRepository, cache: CredentialCache = CredentialCache()) {
        self.devices = devices
        self.cache = cache
    }

    package enum Outcome: Sendable, Equatable { case accepted, rejected, storeUnavailable }

    /// Answers from the cache alone, or nil when the store must be asked.
    package func verifyCached(id: String, secret: String) -> Outcome? {
        guard id.utf8.count <= 64 else { return .rejected }
        let lookup = cache.check(id, secret: secret, maxAge: cache.ttl)
        (lookup == .unknown ? cacheMisses : cacheHits).increment()
        switch lookup {
        case .match: return .accepted
        // A box's secret never changes while it is registered (revocation removes the entry
        // everywhere), so a mismatch with a fresh entry is a wrong secret: no store read.
        case .mismatch: return .rejected
        case .unknown: return nil
        }
    }

    /// Asks the store (one read by `_id`).
    package func verify(id: String, secret: String) async -> Outcome {
        guard id.utf8.count <= 64 else { return .rejected }
        do {
            guard let hash = try await devices.credentials(id) else {
                cache.forget(id)
                // Spend the same hashing work for unknown ids as for known ones.
                _ = Secrets.verify(secret, against: "sha256:")
                return .rejected
            }
            guard Secrets.verify(secret, against: hash) else {
                cache.forget(id)
                return .rejected
            }
            cache.remember(id, secret: secret)
            return .accepted
        } catch {
            switch cache.check(id, secret: secret, maxAge: cache.fallbackTTL) {
            case .match: return .accepted
            case .mismatch: return .rejected
            case .unknown: return .storeUnavailable
            }
        }
    }

    /// Drops a box from the cache (revoked or deleted).
    package func forget(_ id: String) { cache.forget(id) }
}

/// The device-facing WebSocket server on `/v1/stb`.
///
/// A plain SwiftNIO pipeline rather than Hummingbird's WebSocket router: one handler object
/// per connection, no Swift task per connection, a small receive buffer and one read per
/// wake-up. That is what holds idle sessions at a few KB each (docs/benchmarks.md).
package final class DeviceGateway: Service, Sendable {
    package let configuration: GatewayConfiguration
    package let capacity: ConnectionCapacity
    package let shared: GatewayContext
    private let group: EventLoopGroup
    private let authenticator: DeviceAuthenticator
    private let ready: ReadinessGate
    private let draining = NIOLockedBool()
    private let logger: Logger
    private let boundPort = NIOLockedInt()
    private let upgrades = Counter(label: "argus_gateway_handshakes_total")
    private let refusals: GatewayRefusals
    private let limiter: VerificationLimiter
    private let failures: FailedHandshakeLimiter
    private let sessionsGauge = Gauge(label: "argus_gateway_sessions")
    private let socketsGauge = Gauge(label: "argus_gateway_sockets")

    package init(
        configuration: GatewayConfiguration, capacity: ConnectionCapacity, shared: GatewayContext, group: EventLoopGroup,
        authenticator: DeviceAuthenticator, ready: ReadinessGate, logger: Logger
    ) {
        self.configuration = configuration
        self.capacity = capacity
        self.shared = shared
        self.group = group
        self.authenticator = authenticator
        self.ready = ready
        self.logger = logger
        self.refusals = GatewayRefusals(logger: logger)
        self.limiter = VerificationLimiter(limit: configuration.maxVerifications)
        self.failures = FailedHandshakeLimiter(burst: configuration.failedHandshakeBurst)
    }

    /// The port actually bound (useful with port 0).
    package var port: Int { boundPort.value }

    package func run() async throws {
        // Boxes are only let in once the store answers and the indexes exist.
        guard await ready.wait() else { return }
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Connections accepted per wake-up of the listening socket (NIO's default is 4).
            .serverChannelOption(.maxMessagesPerRead, value: UInt(configuration.acceptBatch))
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65536))
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 16 * 1024, high: 64 * 1024))
            .childChannelInitializer { [self] channel in self.initialize(channel) }
            .bind(host: configuration.host, port: configuration.port).get()
        boundPort.value = server.localAddress?.port ?? configuration.port
        logger.info(
            "device gateway listening",
            metadata: [
                LogKey.gatewayURL: .string("ws://\(configuration.host):\(port)\(STBProtocol.path)"),
                LogKey.gatewayCap: .stringConvertible(capacity.cap),
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
        logger.info("draining device gateway", metadata: [LogKey.sessions: .stringConvertible(sessions.count)])
        SessionHandle.forEach(sessions) { $0.close(.goingAway) }
        let deadline = NIODeadline.now() + configuration.drainTimeout
        while shared.registry.sessionCount > 0 && NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        // Store calls here have a deadline: a slow or stopped store must not hold the exit.
        // Presence not written now is repaired at the next start (markNodeOffline).
        let presence = shared.presence
        let limit = Duration.nanoseconds(configuration.flushTimeout.nanoseconds)
        do {
            try await withDeadline(limit, operation: "presence flush") { try await presence.flush() }
            let n = try await withDeadline(limit, operation: "marking the node's boxes offline") { try await presence.markNodeOffline() }
            logger.info("device gateway drained", metadata: [LogKey.presenceOffline: .stringConvertible(n)])
        } catch {
            logger.error("could not record presence while draining; it is repaired at the next start", metadata: [LogKey.error: .string("\(error)")])
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
            SessionHandle.forEach(shared.registry.snapshot()) { $0.sweep(now: now) }
        }
    }

    private func initialize(_ channel: Channel) -> EventLoopFuture<Void> {
        let admission = capacity.acquire()
        channel.closeFuture.whenComplete { [capacity] _ in capacity.release() }
        if admission == .drop || draining.value && admission != .admit {
            refusals.countDropped()
            return channel.close()
        }
        let state = HandshakeState(overCapacity: admission == .overCapacity)
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: configuration.limits.maxFrameBytes * 4,
            automaticErrorHandling: true,
            shouldUpgrade: { [self] channel, head in self.shouldUpgrade(channel, head, state) },
            upgradePipelineHandler: { [self] channel, head in self.upgraded(channel, head, state) }
        )
        let (retryAfter, timeout) = (configuration.retryAfterSeconds, configuration.handshakeTimeout)
        return channel.pipeline.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
            withErrorHandling: true
        ).flatMapThrowing {
            // Runs on the channel's event loop: the handler is added synchronously.
            let responder = HandshakeResponder(state: state, retryAfterSeconds: retryAfter, timeout: timeout)
            try channel.pipeline.syncOperations.addHandler(responder, name: HandshakeResponder.name)
        }
    }

    private func shouldUpgrade(_ channel: Channel, _ head: HTTPRequestHead, _ state: HandshakeState) -> EventLoopFuture<HTTPHeaders?> {
        let loop = channel.eventLoop
        let refusals = self.refusals
        @Sendable func refuse(_ r: HandshakeRejection) -> EventLoopFuture<HTTPHeaders?> {
            state.rejection = r
            refusals.count(r)
            return loop.makeSucceededFuture(nil)
        }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard path == STBProtocol.path else { return refuse(.notFound) }
        if state.overCapacity { return refuse(.overCapacity) }
        if draining.value { return refuse(.draining) }
        let source = channel.remoteAddress?.ipAddress ?? "-"
        let failures = self.failures
        if failures.isLimited(source) { return refuse(.tooManyFailures) }
        guard let auth = head.headers.first(name: "Authorization"), let creds = Secrets.parseBasic(auth) else {
            failures.recordFailure(source)
            return refuse(.unauthorized)
        }
        let authenticator = self.authenticator
        func accept() -> EventLoopFuture<HTTPHeaders?> {
            state.deviceID = creds.id
            return loop.makeSucceededFuture(HTTPHeaders())
        }
        // A known box reconnecting: no store read.
        if let cached = authenticator.verifyCached(id: creds.id, secret: creds.secret) {
            if cached == .accepted { return accept() }
            failures.recordFailure(source)
            return refuse(.unauthorized)
        }
        // Otherwise one store read, if the store has room for it now; never a queue.
        guard limiter.tryAcquire() else { return refuse(.verifyBusy) }
        let limiter = self.limiter
        let promise = loop.makePromise(of: HTTPHeaders?.self)
        let answered = NIOLoopBoundBox(false, eventLoop: loop)
        state.verifying = true
        let deadline = loop.scheduleTask(in: configuration.verifyDeadline) {
            guard !answered.value else { return }
            answered.value = true
            state.verifying = false
            state.rejection = .verifyTimeout
            refusals.count(.verifyTimeout)
            promise.succeed(nil)
        }
        loop.makeFutureWithTask {
            await authenticator.verify(id: creds.id, secret: creds.secret)
        }.whenComplete { result in
            limiter.release()  // the store call is over, whether or not the box still waits
            deadline.cancel()
            guard !answered.value else { return }
            answered.value = true
            state.verifying = false
            switch result {
            case .success(.accepted):
                state.deviceID = creds.id
                promise.succeed(HTTPHeaders())
            case .success(.rejected):
                failures.recordFailure(source)
                state.rejection = .unauthorized
                refusals.count(.unauthorized)
                promise.succeed(nil)
            case .success(.storeUnavailable), .failure:
                state.rejection = .storeUnavailable
                refusals.count(.storeUnavailable)
                promise.succeed(nil)
            }
        }
        return promise.futureResult
    }

    private func upgraded(_ channel: Channel, _ head: HTTPRequestHead, _ state: HandshakeState) -> EventLoopFuture<Void> {
        upgrades.increment()
        let handler = STBConnectionHandler(
            deviceID: state.deviceID ?? "", remoteAddress: channel.remoteAddress?.ipAddress,
            eventLoop: channel.eventLoop, shared: shared)
        return channel.pipeline.removeHandler(name: HandshakeResponder.name).assumeIsolated().flatMapThrowing {
            try channel.pipeline.syncOperations.addHandler(handler)
        }.nonisolated()
    }
}

/// A lock-protected Bool.
package final class NIOLockedBool: Sendable {
    private let box = Mutex(false)
    package var value: Bool {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }
}

/// A lock-protected Int.
package final class NIOLockedInt: Sendable {
    private let box = Mutex(0)
    package var value: Int {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }
}
