import ArgusStore
import ArgusSupport
import CommandRuntime
import Commands
import Foundation
import HubAPI
import HubGateway
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import MongoStore
import NIOCore
import NIOPosix
import Prometheus
import Ratings
import RatingsRuntime
import RecommendRuntime
import STBProtocol
import ServiceLifecycle
import Telemetry

/// Everything a hub node is configured with: the executable fills it from flags and the
/// environment (see `argus-hub --help`), tests fill it directly. Validation of ranges is the
/// executable's (it names the flag); `buildHub` assumes valid values.
package struct HubConfiguration: Sendable {
    package var mongodbURI = "mongodb://127.0.0.1:27017/?directConnection=true&serverSelectionTimeoutMS=5000"
    package var database: String? = nil
    package var deviceHost = "127.0.0.1"
    package var devicePort = 8081
    package var apiHost = "127.0.0.1"
    package var apiPort = 8080
    package var apiMaxConnections = 256
    package var apiHeaderTimeout = 10
    package var apiIdleTimeout = 60
    package var node: String? = nil
    package var tokenFile = ".data/admin-token"
    package var heartbeat = 30
    package var idleTimeout: Int? = nil
    package var maxConnections: Int? = nil
    package var maxFrameBytes = STBProtocol.defaultMaxFrameBytes
    package var threads = System.coreCount
    package var storeThreads = 8
    package var spoolDir: String? = nil
    package var spoolMaxMB = 1024
    package var rateLimit = 50
    package var retentionMetricsDays = 30
    package var retentionEventsDays = 90
    package var retentionLogsDays = 14
    package var alarmRule: [String] = ["tempC>80/300"]
    package var outageShare: Double = 0.2
    package var outageMinViewers = 5
    package var offlineAlarmMinutes = 10
    package var audienceGrace = 90
    package var commandNotify = "stream"
    package var commandPollMs = 1000
    package var commandAckTimeout = 30
    package var commandMaxAttempts = 5
    package var commandRunTimeout = 600
    package var rolloutTickMs = 1000
    package var rolloutHealthSeconds = 30
    package var publicURL: String? = nil
    /// The operator console's directory (`dashboards/console`), served at `/console`; nil:
    /// ``ConsoleAssets/defaultDirectory(executable:)``, and no console when there is none.
    package var consoleDir: String? = nil
    package var drainTimeout = 15
    package var maxVerifications: Int? = nil
    package var credentialCacheTTL = 600
    package var acceptBatch = 64
    /// At graceful shutdown, exit the process once `drainTimeout` has passed whatever is still
    /// running (``ShutdownDeadline``). The executable sets it; a test that starts hubs in its
    /// own process leaves it off.
    package var exitAtDrainTimeout = false
    /// Seconds between ratings builds (only the node holding the lease builds).
    package var ratingsBuildSeconds = 60
    /// Named dayparts for ratings, e.g. `peak 19-23` (UTC hours; see docs/ratings-method.md).
    package var dayparts = DaypartSchedule.defaultSpec
    /// Segment dimensions ratings are also built for.
    package var ratingSegments: [SegmentDimension] = [.model, .firmware]
    /// XMLTV guides fetched on a schedule, and how often.
    package var epgSources: [EPGFetcher.Source] = []
    package var epgRefreshSeconds = 21_600
    /// The clock receive times and the ratings builder's now are read from: real, or a
    /// simulation's (`--clock-speed`).
    package var clock: HubClock = .real
    /// How the recommendation trainer trains (schedule, days of viewing, ALS parameters).
    package var recommendSettings = RecommendSettings()

    package init() {}
}

/// Why a hub could not be built (a bad store URI, a spool directory that cannot be used).
package struct HubStartError: Error, CustomStringConvertible {
    package var message: String
    package var underlying: any Error
    package var description: String { "\(message): \(underlying)" }
}

/// Builds one hub node: the store client, the gateway, the API, the command and telemetry
/// services, wired and ordered in one `ServiceGroup`. Running the group runs the node; a
/// graceful shutdown (SIGTERM/SIGINT, or `triggerGracefulShutdown()`) drains it in reverse
/// order and closes the store and the event loops last (``HubResources``).
///
/// `metrics` is the registry `/metrics` exports; the caller bootstraps `MetricsSystem` with it
/// (once per process), so counters created here land in it.
package func buildHub(
    _ configuration: HubConfiguration, metrics: PrometheusCollectorRegistry, logger: Logger
) throws -> ServiceGroup {
    try configuration.build(metrics: metrics, logger: logger)
}

extension HubConfiguration {
    fileprivate func build(metrics: PrometheusCollectorRegistry, logger: Logger) throws -> ServiceGroup {
        let store: MongoStore
        do {
            store = try MongoStore(uri: mongodbURI, database: database, threads: storeThreads, logger: Logger(label: "argus.store"))
        } catch {
            throw HubStartError(message: "cannot use the MongoDB URI", underlying: error)
        }

        let nodeName = node ?? "\(ProcessInfo.processInfo.hostName):\(devicePort)"
        let limit = ConnectionCapacity.descriptorLimit()
        var gw = GatewayConfiguration()
        gw.host = deviceHost
        gw.port = devicePort
        gw.heartbeatSeconds = heartbeat
        gw.idleTimeout = idleTimeout.map { .seconds(Int64($0)) }
        gw.limits = Limits(maxFrameBytes: maxFrameBytes)
        gw.maxVerifications = maxVerifications ?? storeThreads * 8
        gw.acceptBatch = acceptBatch
        // Boxes get a third of the drain to close; the rest is for flushing presence.
        gw.drainTimeout = .milliseconds(Int64(drainTimeout) * 1000 / 3)
        gw.flushTimeout = .milliseconds(Int64(drainTimeout) * 1000 / 3)
        var apiLimits = APILimits()
        apiLimits.maxConnections = apiMaxConnections
        apiLimits.headerTimeout = .seconds(Int64(apiHeaderTimeout))
        apiLimits.idleTimeout = .seconds(Int64(apiIdleTimeout))
        // The API's sockets come out of the same descriptor budget as the gateway's.
        let derived = ConnectionCapacity.derivedCap(
            descriptorLimit: limit, reserved: gw.reservedDescriptors + apiLimits.maxConnections + apiLimits.rejectBudget,
            rejectBudget: gw.rejectBudget)
        var cap = derived
        if let m = maxConnections {
            if m > derived {
                logger.warning(
                    "--max-connections is above what the descriptor limit allows; using the derived cap",
                    metadata: [LogKey.requested: .stringConvertible(m), LogKey.cap: .stringConvertible(derived), LogKey.fdLimit: .stringConvertible(limit)])
            } else {
                cap = m
            }
        }
        logger.info(
            "connection capacity",
            metadata: [
                LogKey.fdLimit: .stringConvertible(limit), LogKey.cap: .stringConvertible(cap),
                LogKey.apiCap: .stringConvertible(apiLimits.maxConnections),
            ])

        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let gate = ReadinessGate()
        let registry = ConnectionRegistry()
        let presence = PresenceWriter(store: store, node: nodeName, logger: Logger(label: "argus.presence"))
        let capacity = ConnectionCapacity(cap: cap, rejectBudget: gw.rejectBudget)
        let spool: Spool
        do {
            spool = try Spool(configuration: .init(directory: spoolDir ?? ".data/spool-\(devicePort)", maxBytes: spoolMaxMB << 20))
        } catch {
            throw HubStartError(message: "cannot open the telemetry spool", underlying: error)
        }
        if spool.bytesOnDisk > 0 {
            logger.notice("telemetry spooled by an earlier run will be applied", metadata: [LogKey.spoolBytes: .stringConvertible(spool.bytesOnDisk)])
        }
        spool.start()
        let live = LiveHub()
        let ingest = TelemetryIngest(spool: spool, messagesPerSecond: rateLimit, burst: max(rateLimit * 2, gw.limits.maxBatch * 2), live: live)
        gw.limits.messagesPerSecond = rateLimit
        let telemetryStore = MongoTelemetryStore(store: store)
        let audience = AudienceState()
        let alarms = AlarmState(
            AlarmEvaluator(
                rules: alarmRule.compactMap(ThresholdRule.parse), outageShare: outageShare,
                outageMinViewers: outageMinViewers)
        ) { [live] changes in
            for c in changes {
                var w = JSONWriter(capacity: 128)
                w.beginObject()
                w.string("type", "alarm")
                switch c {
                case .raise(let key, let rule, let target, _):
                    w.string("state", "raised"); w.string("key", key); w.string("rule", rule); w.string("target", target)
                case .clear(let key):
                    w.string("state", "cleared"); w.string("key", key)
                }
                w.endObject()
                live.publishFleet(String(decoding: w.bytes, as: UTF8.self))
            }
        }
        let telemetry = TelemetryService(
            applier: TelemetryApplier(
                spool: spool, store: telemetryStore, audience: audience, alarms: alarms,
                logger: Logger(label: "argus.telemetry")),
            spool: spool, audience: audience, store: telemetryStore, gate: gate,
            audienceGrace: .seconds(Int64(audienceGrace)),
            offlineAfter: offlineAlarmMinutes > 0 ? .seconds(Int64(offlineAlarmMinutes) * 60) : nil,
            alarms: alarms, alarmRepository: AlarmRepository(store: store),
            logger: Logger(label: "argus.telemetry"))
        var commandConfig = CommandSettings()
        commandConfig.notification = JobNotification(rawValue: commandNotify) ?? .changeStream
        commandConfig.pollInterval = .milliseconds(Int64(commandPollMs))
        commandConfig.timeouts.ackMillis = Int64(commandAckTimeout) * 1000
        commandConfig.timeouts.maxAttempts = commandMaxAttempts
        commandConfig.timeouts.runMillis = Int64(commandRunTimeout) * 1000
        let commands = CommandService(
            store: store, registry: registry, node: nodeName, configuration: commandConfig, gate: gate,
            logger: Logger(label: "argus.commands"))
        let rollouts = RolloutService(
            store: store, commands: commands, node: nodeName, tick: .milliseconds(Int64(rolloutTickMs)),
            healthEvery: .seconds(Int64(rolloutHealthSeconds)), gate: gate, logger: Logger(label: "argus.rollouts"))
        let schedule: DaypartSchedule
        do { schedule = try DaypartSchedule.parse(dayparts) } catch {
            throw HubStartError(message: "invalid dayparts \(dayparts)", underlying: error)
        }
        let ratings = RatingsService(store: store, dayparts: schedule, segments: ratingSegments, clock: clock)
        let recommendations = RecommendService(
            store: store, whatIsOn: WhatIsOn(ratings: ratings, epg: EPGStore(store: store), clock: clock))
        let shared = GatewayContext(
            node: nodeName, registry: registry, presence: presence, ingest: ingest, commands: commands, heartbeatSeconds: heartbeat,
            limits: gw.limits, timing: gw.timing, logger: Logger(label: "argus.gateway"), clock: clock,
            recommendations: RecommendationRequests(source: ServiceRecommendations(service: recommendations)))
        let devices = DeviceRepository(store: store)
        let authenticator = DeviceAuthenticator(devices: devices, cache: CredentialCache(ttl: .seconds(credentialCacheTTL)))
        let revocationFeed = RevocationFeed(
            devices: devices, authenticator: authenticator, registry: registry,
            useChangeStream: commandConfig.notification == .changeStream, gate: gate,
            logger: Logger(label: "argus.revocations"))
        let gateway = DeviceGateway(
            configuration: gw, capacity: capacity, shared: shared, group: group,
            authenticator: authenticator, ready: gate, logger: Logger(label: "argus.gateway"))
        let ratingsBuilder = RatingsBuilder(
            store: store, node: nodeName, settings: RatingsSettings(interval: .seconds(Int64(ratingsBuildSeconds)), segments: ratingSegments), gate: gate,
            logger: Logger(label: "argus.ratings"), now: { [clock] in clock.nowMillis() })
        var apiDeps = APIDependencies(
            store: store, devices: devices, tokens: TokenRepository(store: store),
            audit: AuditLog(store: store, node: nodeName, logger: Logger(label: "argus.audit")),
            registry: registry, capacity: capacity, gate: gate, node: nodeName, metrics: metrics,
            authenticator: authenticator, live: live, commands: commands, rollouts: rollouts,
            publicURL: (publicURL ?? "http://\(apiHost):\(apiPort)").trimmingCharacters(in: CharacterSet(charactersIn: "/")))
        let trainer = RecommendTrainer(
            store: store, node: nodeName, settings: recommendSettings, gate: gate, logger: Logger(label: "argus.recommend"),
            now: { [clock] in clock.nowMillis() })
        apiDeps.recommendations = recommendations
        if let dir = consoleDir ?? ConsoleAssets.defaultDirectory() {
            do { apiDeps.console = try ConsoleAssets(directory: dir) } catch {
                throw HubStartError(message: "cannot serve the console from \(dir)", underlying: error)
            }
        } else {
            logger.notice("no console directory found; /console is not served (pass --console-dir)")
        }
        apiDeps.ratings = ratings
        let deps = apiDeps
        let api = Application(
            router: OperatorAPI.router(deps),
            server: .guardedHTTP1WebSocket(
                limits: apiLimits, capacity: ConnectionCapacity(cap: apiLimits.maxConnections, rejectBudget: apiLimits.rejectBudget),
                stats: APIConnectionStats(logger: Logger(label: "argus.api"))
            ) { request, _, _ in
                try await LiveRoute.shouldUpgrade(request, deps: deps, live: live)
            },
            configuration: .init(address: .hostname(apiHost, port: apiPort), serverName: "argus"),
            eventLoopGroupProvider: .shared(group), logger: Logger(label: "argus.api"))
        let retention = RetentionConfiguration(metricsDays: retentionMetricsDays, eventsDays: retentionEventsDays, logsDays: retentionLogsDays)
        let bootstrap = StoreBootstrap(
            store: store, gate: gate, tokenFile: tokenFile, presence: presence, retention: retention,
            logger: Logger(label: "argus.store"))

        logger.info(
            "starting hub",
            metadata: [
                LogKey.node: .string(nodeName), LogKey.apiURL: .string("http://\(apiHost):\(apiPort)/api/v1"),
                LogKey.gatewayURL: .string("ws://\(deviceHost):\(devicePort)\(STBProtocol.path)"), LogKey.storeDatabase: .string(store.databaseName),
            ])
        // Shutdown runs in reverse: the gateway drains first, then the spool is synced and sealed,
        // then presence flushes, then the API stops.
        return ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: HubResources(store: store, group: group)),
                    .init(service: bootstrap),
                    .init(service: api),
                    .init(service: presence),
                    .init(service: telemetry),
                    .init(service: commands),
                    .init(service: rollouts),
                    .init(service: ratingsBuilder),
                    .init(service: trainer),
                    .init(
                        service: EPGFetcher(
                            sources: epgSources, interval: .seconds(Int64(epgRefreshSeconds)), store: store, group: group, gate: gate,
                            logger: Logger(label: "argus.epg"))),
                    .init(service: FleetTicker(live: live, registry: registry, ingest: ingest, node: nodeName)),
                    .init(service: revocationFeed),
                    .init(service: gateway),
                ] + (exitAtDrainTimeout ? [.init(service: ShutdownDeadline(seconds: drainTimeout, logger: logger))] : []),
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
    }
}

/// First in the group, so last to stop: closes the store client and the event loop group
/// after every other service has drained. On cancellation (a service failed) it leaves them
/// open, since other services may still be inside a store call; the process is ending.
struct HubResources: Service {
    let store: MongoStore
    let group: MultiThreadedEventLoopGroup

    func run() async throws {
        do { try await gracefulShutdown() } catch { return }
        await store.shutdown()
        try? await group.shutdownGracefully()
    }
}
