import ArgumentParser
import ArgusStore
import ArgusSupport
import CommandRuntime
import Commands
import Foundation
import Hub
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
import STBProtocol
import ServiceLifecycle
import Telemetry

/// Reads an environment variable once, for flag defaults.
enum Env {
    static let values = ProcessInfo.processInfo.environment
    static func string(_ name: String, _ def: String) -> String { values[name] ?? def }
    static func int(_ name: String, _ def: Int) -> Int { values[name].flatMap(Int.init) ?? def }
    /// The variable as an integer, nil when unset; set but not an integer is an error.
    static func strictInt(_ name: String) throws -> Int? {
        guard let v = values[name] else { return nil }
        guard let i = Int(v) else { throw ValidationError("\(name) must be an integer, got \"\(v)\"") }
        return i
    }
}

/// The entry point. Bad flags exit with status 2 (not ArgumentParser's 64), as operators'
/// scripts expect of a Unix daemon.
@main
enum Entry {
    static func main() async {
        do {
            var command = try ArgusHub.parseAsRoot()
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch {
            let code = ArgusHub.exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((ArgusHub.fullMessage(for: error) + "\n").utf8))
                ArgusHub.exit(withError: ExitCode(2))
            }
            ArgusHub.exit(withError: error)
        }
    }
}

struct ArgusHub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "argus-hub",
        abstract: "Argus hub: the STB device gateway and the operator API.",
        subcommands: [Serve.self, RecommendCommand.self],
        defaultSubcommand: Serve.self
    )
}

/// `argus-hub serve`: runs a hub node. Every flag has an environment equivalent, named in its help.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a hub node (the default).")

    @Option(help: "MongoDB connection string (env MONGODB_URI).")
    var mongodbURI = Env.string("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true&serverSelectionTimeoutMS=5000")

    @Option(help: "Database name (env ARGUS_DATABASE); default: the URI's, else argus.")
    var database: String?

    @Option(help: "Device gateway address (env ARGUS_DEVICE_HOST).")
    var deviceHost = Env.string("ARGUS_DEVICE_HOST", "127.0.0.1")

    @Option(help: "Device gateway port, WebSocket /v1/stb (env ARGUS_DEVICE_PORT).")
    var devicePort = Env.int("ARGUS_DEVICE_PORT", 8081)

    @Option(help: "Operator API address (env ARGUS_API_HOST).")
    var apiHost = Env.string("ARGUS_API_HOST", "127.0.0.1")

    @Option(help: "Operator API port: /api/v1, /healthz, /metrics (env ARGUS_API_PORT).")
    var apiPort = Env.int("ARGUS_API_PORT", 8080)

    @Option(help: "Most operator API connections at once; counted in the same descriptor budget as the gateway's, 503 past it (env ARGUS_API_MAX_CONNECTIONS).")
    var apiMaxConnections = Env.int("ARGUS_API_MAX_CONNECTIONS", 256)

    @Option(help: "Seconds a request's headers may take to arrive on the API port; then 408 and close (env ARGUS_API_HEADER_TIMEOUT).")
    var apiHeaderTimeout = Env.int("ARGUS_API_HEADER_TIMEOUT", 10)

    @Option(help: "Seconds an API keep-alive connection may stay idle before it is closed (env ARGUS_API_IDLE_TIMEOUT).")
    var apiIdleTimeout = Env.int("ARGUS_API_IDLE_TIMEOUT", 60)

    @Option(help: "This node's name in presence records (env ARGUS_NODE); default host:devicePort.")
    var node: String?

    @Option(help: "Where the bootstrap admin token is written on a fresh database (env ARGUS_TOKEN_FILE).")
    var tokenFile = Env.string("ARGUS_TOKEN_FILE", ".data/admin-token")

    @Option(help: "Heartbeat interval announced to boxes, seconds (env ARGUS_HEARTBEAT).")
    var heartbeat = Env.int("ARGUS_HEARTBEAT", 30)

    @Option(help: "Close a silent box after this many seconds; default 2.5 heartbeats (env ARGUS_IDLE_TIMEOUT).")
    var idleTimeout: Int?

    @Option(help: "Cap on live box sessions; default derived from the descriptor limit (env ARGUS_MAX_CONNECTIONS).")
    var maxConnections: Int?

    @Option(help: "Largest accepted text frame, bytes (env ARGUS_MAX_FRAME_BYTES).")
    var maxFrameBytes = Env.int("ARGUS_MAX_FRAME_BYTES", STBProtocol.defaultMaxFrameBytes)

    @Option(help: "Event loop threads (env ARGUS_THREADS); default one per core.")
    var threads = Env.int("ARGUS_THREADS", System.coreCount)

    @Option(help: "Threads for blocking store calls (env ARGUS_STORE_THREADS).")
    var storeThreads = Env.int("ARGUS_STORE_THREADS", 8)

    @Option(help: "Telemetry spool directory (env ARGUS_SPOOL_DIR); default .data/spool-<device port>.")
    var spoolDir: String?

    @Option(help: "Most telemetry kept in the spool while the store lags or is down, MiB (env ARGUS_SPOOL_MAX_MB).")
    var spoolMaxMB = Env.int("ARGUS_SPOOL_MAX_MB", 1024)

    @Option(help: "Telemetry messages per second allowed per box (env ARGUS_RATE_LIMIT).")
    var rateLimit = Env.int("ARGUS_RATE_LIMIT", 50)

    @Option(help: "Days to keep metrics, events and logs (env ARGUS_RETENTION_METRICS_DAYS, _EVENTS_, _LOGS_).")
    var retentionMetricsDays = Env.int("ARGUS_RETENTION_METRICS_DAYS", 30)
    @Option(help: "Days to keep viewing and app events.")
    var retentionEventsDays = Env.int("ARGUS_RETENTION_EVENTS_DAYS", 90)
    @Option(help: "Days to keep log lines.")
    var retentionLogsDays = Env.int("ARGUS_RETENTION_LOGS_DAYS", 14)

    @Option(help: "A metric alarm rule, metric>value/seconds or metric<value/seconds; repeatable (env ARGUS_ALARM_RULES, comma-separated).")
    var alarmRule: [String] = (Env.values["ARGUS_ALARM_RULES"] ?? "tempC>80/300").split(separator: ",").map(String.init)

    @Option(help: "Share of a channel's viewers reporting playback errors within a minute that raises a channel outage (env ARGUS_OUTAGE_SHARE).")
    var outageShare: Double = Double(Env.string("ARGUS_OUTAGE_SHARE", "0.2")) ?? 0.2

    @Option(help: "Fewest viewers of a channel for an outage alarm (env ARGUS_OUTAGE_MIN_VIEWERS).")
    var outageMinViewers = Env.int("ARGUS_OUTAGE_MIN_VIEWERS", 5)

    @Option(help: "Raise an offline alarm for a box offline longer than this many minutes; 0 turns it off (env ARGUS_OFFLINE_ALARM_MINUTES).")
    var offlineAlarmMinutes = Env.int("ARGUS_OFFLINE_ALARM_MINUTES", 10)

    @Option(help: "Seconds after a minute ends before its audience counters are written (env ARGUS_AUDIENCE_GRACE).")
    var audienceGrace = Env.int("ARGUS_AUDIENCE_GRACE", 90)

    @Option(help: "How nodes hear of jobs created on other nodes: stream (change stream, polling while it is down) or poll (env ARGUS_COMMAND_NOTIFY).")
    var commandNotify = Env.string("ARGUS_COMMAND_NOTIFY", "stream")

    @Option(help: "Polling interval for jobs, milliseconds (env ARGUS_COMMAND_POLL_MS).")
    var commandPollMs = Env.int("ARGUS_COMMAND_POLL_MS", 1000)

    @Option(help: "Seconds a delivered command may go unconfirmed before it is sent again (env ARGUS_COMMAND_ACK_TIMEOUT).")
    var commandAckTimeout = Env.int("ARGUS_COMMAND_ACK_TIMEOUT", 30)

    @Option(help: "Deliveries of one command before it times out (env ARGUS_COMMAND_MAX_ATTEMPTS).")
    var commandMaxAttempts = Env.int("ARGUS_COMMAND_MAX_ATTEMPTS", 5)

    @Option(help: "Seconds a running command may go without a report before it times out (env ARGUS_COMMAND_RUN_TIMEOUT).")
    var commandRunTimeout = Env.int("ARGUS_COMMAND_RUN_TIMEOUT", 600)

    @Option(help: "How often rollouts are advanced, milliseconds (env ARGUS_ROLLOUT_TICK_MS).")
    var rolloutTickMs = Env.int("ARGUS_ROLLOUT_TICK_MS", 1000)

    @Option(help: "How often a rollout's health gate is evaluated, seconds (env ARGUS_ROLLOUT_HEALTH_SECONDS).")
    var rolloutHealthSeconds = Env.int("ARGUS_ROLLOUT_HEALTH_SECONDS", 30)

    @Option(help: "Seconds between ratings builds; only the node holding the lease builds (env ARGUS_RATINGS_BUILD_SECONDS).")
    var ratingsBuildSeconds = Env.int("ARGUS_RATINGS_BUILD_SECONDS", 60)

    @Option(help: "Named dayparts for ratings, UTC hours, end exclusive (env ARGUS_DAYPARTS).")
    var dayparts = ProcessInfo.processInfo.environment["ARGUS_DAYPARTS"] ?? DaypartSchedule.defaultSpec

    @Option(help: "Segment dimensions ratings are also built for: comma-separated model, firmware, tag, or none (env ARGUS_RATING_SEGMENTS).")
    var ratingSegments = ProcessInfo.processInfo.environment["ARGUS_RATING_SEGMENTS"] ?? "model,firmware"

    @Option(help: "An XMLTV guide to import on a schedule, as ID=URL (repeatable; env ARGUS_EPG_SOURCES, comma-separated).")
    var epgSource: [String] = ProcessInfo.processInfo.environment["ARGUS_EPG_SOURCES"].map { $0.split(separator: ",").map(String.init) } ?? []

    @Option(help: "Seconds between fetches of each --epg-source (env ARGUS_EPG_REFRESH_SECONDS).")
    var epgRefreshSeconds = Env.int("ARGUS_EPG_REFRESH_SECONDS", 21_600)

    @Option(help: "Hours between scheduled recommendation trainings (POST /api/v1/recommendations/train starts one now) (env ARGUS_RECOMMEND_TRAIN_HOURS).")
    var recommendTrainHours = Env.int("ARGUS_RECOMMEND_TRAIN_HOURS", 6)

    @Option(help: "Days of viewing the recommendation model learns from (env ARGUS_RECOMMEND_DAYS).")
    var recommendDays = Env.int("ARGUS_RECOMMEND_DAYS", 28)

    @Option(help: "ALS factors of the recommendation model (env ARGUS_RECOMMEND_FACTORS).")
    var recommendFactors = Env.int("ARGUS_RECOMMEND_FACTORS", 32)

    @Option(
        help:
            "Simulation only: receive times and the ratings builder's clock run X times faster, from --clock-start, like a fleet run with stb-agent --clock-speed X (default 1: real time)."
    )
    var clockSpeed: Double = 1

    @Option(help: "Simulation only: the simulated time at start, ISO 8601 (e.g. 2026-12-01T00:00:00Z); needs --clock-speed.")
    var clockStart: String?

    @Option(help: "Base URL boxes use to download uploaded firmware (env ARGUS_PUBLIC_URL); default http://<api host>:<api port>.")
    var publicURL: String?

    @Option(
        help:
            "The operator console's directory, served at /console (env ARGUS_CONSOLE_DIR); default dashboards/console under the working directory or the executable's checkout."
    )
    var consoleDir: String?

    @Option(
        help:
            "Seconds from SIGTERM to exit: boxes are told 1001, presence and the spool are flushed within it, and what is left is repaired at the next start (env ARGUS_DRAIN_TIMEOUT)."
    )
    var drainTimeout = Env.int("ARGUS_DRAIN_TIMEOUT", 15)

    @Option(
        help:
            "Credential lookups in the store at once; handshakes past it get 503 + Retry-After at once; default 8 per store thread (env ARGUS_MAX_VERIFICATIONS)."
    )
    var maxVerifications: Int?

    @Option(help: "Seconds a secret confirmed by the store is trusted from this node's cache before the store is asked again (env ARGUS_CREDENTIAL_CACHE_TTL).")
    var credentialCacheTTL = Env.int("ARGUS_CREDENTIAL_CACHE_TTL", 600)

    @Option(help: "Connections the device port accepts per wake-up (env ARGUS_ACCEPT_BATCH).")
    var acceptBatch = Env.int("ARGUS_ACCEPT_BATCH", 64)

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env LOG_LEVEL).")
    var logLevel = Env.string("LOG_LEVEL", "info")

    /// `--rating-segments` as dimensions; nil if a name is unknown.
    var parsedRatingSegments: [SegmentDimension]? {
        if ratingSegments == "none" || ratingSegments.isEmpty { return [] }
        let dims = ratingSegments.split(separator: ",").map { SegmentDimension(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        return dims.contains(nil) ? nil : dims.compactMap { $0 }
    }

    mutating func validate() throws {
        // Optional flags take their environment variable here: ArgumentParser deprecates an
        // optional @Option with a default value.
        database = database ?? Env.values["ARGUS_DATABASE"]
        node = node ?? Env.values["ARGUS_NODE"]
        idleTimeout = try idleTimeout ?? Env.strictInt("ARGUS_IDLE_TIMEOUT")
        maxConnections = try maxConnections ?? Env.strictInt("ARGUS_MAX_CONNECTIONS")
        spoolDir = spoolDir ?? Env.values["ARGUS_SPOOL_DIR"]
        publicURL = publicURL ?? Env.values["ARGUS_PUBLIC_URL"]
        consoleDir = consoleDir ?? Env.values["ARGUS_CONSOLE_DIR"]
        maxVerifications = try maxVerifications ?? Env.strictInt("ARGUS_MAX_VERIFICATIONS")
        guard (1...600).contains(drainTimeout) else { throw ValidationError("--drain-timeout must be from 1 to 600 seconds") }
        if let m = maxVerifications, !(1...10_000).contains(m) { throw ValidationError("--max-verifications must be from 1 to 10000") }
        guard (0...86_400).contains(credentialCacheTTL) else { throw ValidationError("--credential-cache-ttl must be from 0 to 86400 seconds") }
        guard (1...4096).contains(acceptBatch) else { throw ValidationError("--accept-batch must be from 1 to 4096") }
        for (name, port) in [("--device-port", devicePort), ("--api-port", apiPort)] where !(0...65535).contains(port) {
            throw ValidationError("\(name) must be from 0 to 65535, got \(port)")
        }
        guard (1...3600).contains(heartbeat) else { throw ValidationError("--heartbeat must be from 1 to 3600 seconds") }
        if let t = idleTimeout, t <= heartbeat { throw ValidationError("--idle-timeout must be longer than --heartbeat") }
        if let m = maxConnections, m < 1 { throw ValidationError("--max-connections must be at least 1") }
        guard (1...100_000).contains(apiMaxConnections) else { throw ValidationError("--api-max-connections must be from 1 to 100000") }
        guard (1...600).contains(apiHeaderTimeout) else { throw ValidationError("--api-header-timeout must be from 1 to 600 seconds") }
        guard (1...3600).contains(apiIdleTimeout) else { throw ValidationError("--api-idle-timeout must be from 1 to 3600 seconds") }
        guard (1024...(16 << 20)).contains(maxFrameBytes) else { throw ValidationError("--max-frame-bytes must be from 1024 to 16777216") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be from 1 to 64") }
        guard (1...256).contains(storeThreads) else { throw ValidationError("--store-threads must be from 1 to 256") }
        guard (16...1_048_576).contains(spoolMaxMB) else { throw ValidationError("--spool-max-mb must be from 16 to 1048576") }
        guard (1...100_000).contains(rateLimit) else { throw ValidationError("--rate-limit must be from 1 to 100000") }
        for (n, d) in [
            ("--retention-metrics-days", retentionMetricsDays), ("--retention-events-days", retentionEventsDays),
            ("--retention-logs-days", retentionLogsDays),
        ] where !(1...3650).contains(d) {
            throw ValidationError("\(n) must be from 1 to 3650")
        }
        for r in alarmRule where ThresholdRule.parse(r) == nil {
            throw ValidationError("--alarm-rule \(r) is not metric>value/seconds or metric<value/seconds with a known metric")
        }
        guard outageShare > 0 && outageShare <= 1 else { throw ValidationError("--outage-share must be above 0 and at most 1") }
        guard (1...100_000).contains(outageMinViewers) else { throw ValidationError("--outage-min-viewers must be from 1 to 100000") }
        guard (0...100_000).contains(offlineAlarmMinutes) else { throw ValidationError("--offline-alarm-minutes must be from 0 to 100000") }
        guard (0...3600).contains(audienceGrace) else { throw ValidationError("--audience-grace must be from 0 to 3600") }
        guard JobNotification(rawValue: commandNotify) != nil else { throw ValidationError("--command-notify must be stream or poll") }
        guard (50...60_000).contains(commandPollMs) else { throw ValidationError("--command-poll-ms must be from 50 to 60000") }
        guard (50...60_000).contains(rolloutTickMs) else { throw ValidationError("--rollout-tick-ms must be from 50 to 60000") }
        guard (1...86_400).contains(ratingsBuildSeconds) else { throw ValidationError("--ratings-build-seconds must be from 1 to 86400") }
        do { _ = try DaypartSchedule.parse(dayparts) } catch { throw ValidationError("--dayparts: \(error)") }
        guard (1...8_760).contains(recommendTrainHours) else { throw ValidationError("--recommend-train-hours must be from 1 to 8760") }
        guard (1...90).contains(recommendDays) else { throw ValidationError("--recommend-days must be from 1 to 90") }
        guard (1...512).contains(recommendFactors) else { throw ValidationError("--recommend-factors must be from 1 to 512") }
        guard clockSpeed > 0 && clockSpeed <= 1_000_000 else { throw ValidationError("--clock-speed must be above 0 and at most 1000000") }
        if let clockStart {
            guard ISOTime.millis(clockStart) != nil else { throw ValidationError("--clock-start must be an ISO 8601 time, not \(clockStart)") }
            guard clockSpeed != 1 else { throw ValidationError("--clock-start needs --clock-speed") }
        }
        guard (1...604_800).contains(epgRefreshSeconds) else { throw ValidationError("--epg-refresh-seconds must be from 1 to 604800") }
        for s in epgSource {
            let kv = s.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, !kv[0].isEmpty, kv[1].hasPrefix("http://") || kv[1].hasPrefix("https://") else {
                throw ValidationError("--epg-source must be ID=URL with an http:// or https:// URL, not \(s)")
            }
        }
        guard parsedRatingSegments != nil else {
            throw ValidationError("--rating-segments must be none or a comma-separated list of model, firmware, tag")
        }
        guard (1...3600).contains(rolloutHealthSeconds) else { throw ValidationError("--rollout-health-seconds must be from 1 to 3600") }
        guard (1...3600).contains(commandAckTimeout) else { throw ValidationError("--command-ack-timeout must be from 1 to 3600") }
        guard (1...100).contains(commandMaxAttempts) else { throw ValidationError("--command-max-attempts must be from 1 to 100") }
        guard (10...86_400).contains(commandRunTimeout) else { throw ValidationError("--command-run-timeout must be from 10 to 86400") }
        if let u = publicURL, !(u.hasPrefix("http://") || u.hasPrefix("https://")) { throw ValidationError("--public-url must start with http:// or https://") }
        if let d = consoleDir, !FileManager.default.fileExists(atPath: d + "/index.html") {
            throw ValidationError("--console-dir \(d) has no index.html")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// The flags as the hub's configuration.
    var hubConfiguration: HubConfiguration {
        var c = HubConfiguration()
        c.mongodbURI = mongodbURI
        c.database = database
        c.deviceHost = deviceHost
        c.devicePort = devicePort
        c.apiHost = apiHost
        c.apiPort = apiPort
        c.apiMaxConnections = apiMaxConnections
        c.apiHeaderTimeout = apiHeaderTimeout
        c.apiIdleTimeout = apiIdleTimeout
        c.node = node
        c.tokenFile = tokenFile
        c.heartbeat = heartbeat
        c.idleTimeout = idleTimeout
        c.maxConnections = maxConnections
        c.maxFrameBytes = maxFrameBytes
        c.threads = threads
        c.storeThreads = storeThreads
        c.spoolDir = spoolDir
        c.spoolMaxMB = spoolMaxMB
        c.rateLimit = rateLimit
        c.retentionMetricsDays = retentionMetricsDays
        c.retentionEventsDays = retentionEventsDays
        c.retentionLogsDays = retentionLogsDays
        c.alarmRule = alarmRule
        c.outageShare = outageShare
        c.outageMinViewers = outageMinViewers
        c.offlineAlarmMinutes = offlineAlarmMinutes
        c.audienceGrace = audienceGrace
        c.commandNotify = commandNotify
        c.commandPollMs = commandPollMs
        c.commandAckTimeout = commandAckTimeout
        c.commandMaxAttempts = commandMaxAttempts
        c.commandRunTimeout = commandRunTimeout
        c.rolloutTickMs = rolloutTickMs
        c.ratingsBuildSeconds = ratingsBuildSeconds
        c.dayparts = dayparts
        c.ratingSegments = parsedRatingSegments ?? []
        c.epgSources = epgSource.compactMap { s in
            let kv = s.split(separator: "=", maxSplits: 1).map(String.init)
            return kv.count == 2 ? EPGFetcher.Source(id: kv[0], url: kv[1]) : nil
        }
        c.epgRefreshSeconds = epgRefreshSeconds
        c.recommendSettings.interval = .seconds(Int64(recommendTrainHours) * 3600)
        c.recommendSettings.days = recommendDays
        c.recommendSettings.parameters.factors = recommendFactors
        if clockSpeed != 1 {
            let real = HubClock.realMillis()
            c.clock = HubClock(speed: clockSpeed, startMillis: clockStart.flatMap(ISOTime.millis) ?? real, realOrigin: real)
        }
        c.rolloutHealthSeconds = rolloutHealthSeconds
        c.publicURL = publicURL
        c.consoleDir = consoleDir
        c.drainTimeout = drainTimeout
        c.maxVerifications = maxVerifications
        c.credentialCacheTTL = credentialCacheTTL
        c.acceptBatch = acceptBatch
        c.exitAtDrainTimeout = true
        return c
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "argus.hub")
        let metrics = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: metrics)
        // Presence lag spans seconds to minutes on a slow store during a storm; the default
        // duration buckets stop at 10 s.
        factory.durationHistogramBuckets["argus_presence_lag_seconds"] = [
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
            .seconds(10), .seconds(20), .seconds(30), .seconds(60), .seconds(120), .seconds(300),
        ]
        MetricsSystem.bootstrap(factory)

        let services: ServiceGroup
        do {
            services = try buildHub(hubConfiguration, metrics: metrics, logger: logger)
        } catch let e as HubStartError {
            logger.critical("\(e.message)", metadata: [LogKey.error: .string("\(e.underlying)")])
            throw ExitCode(2)
        }
        // (ShutdownDeadline exits the process at the drain timeout whatever is still running.)
        do {
            try await services.run()
        } catch {
            logger.error("hub stopped on an error", metadata: [LogKey.error: .string("\(error)")])
            throw ExitCode.failure
        }
        logger.info("hub stopped")
    }
}
