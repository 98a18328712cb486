// swift-tools-version:6.0
import Foundation
import PackageDescription

/// Opt-in: `ARGUS_TARGET_CPU=haswell swift build -c release` compiles the recommendation kernels for
/// that CPU (AVX2 and FMA on x86-64); the default build runs on any x86-64 or arm64
/// (docs/recommendations.md, "The solver").
let recommendSettings: [SwiftSetting] = ProcessInfo.processInfo.environment["ARGUS_TARGET_CPU"].map { [.unsafeFlags(["-target-cpu", $0])] } ?? []

let package = Package(
    name: "Argus",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "argus-hub", targets: ["ControlServer"]),
        .executable(name: "stb-agent", targets: ["STBAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // libmongoc / libbson, found through pkg-config. Only MongoStore imports it.
        .systemLibrary(
            name: "CMongoC",
            pkgConfig: "libmongoc-1.0",
            providers: [.apt(["libmongoc-dev", "libbson-dev"])]
        ),
        // The single gateway to MongoDB: client pool on its own threads, async API, BSON conversion.
        .target(
            name: "MongoStore",
            dependencies: [
                "CMongoC", "ArgusSupport",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The STB wire protocol v1 (docs/protocol.md): envelope, frames, close and error codes.
        .target(name: "STBProtocol"),
        // Small parts every module shares: PendingBatch/PendingWrites (the one bounded batch of
        // writes waiting for the store), Wakeup, RateLimitedLog, Timer.record(Duration).
        // Imports only the standard library and swift-metrics' API.
        .target(name: "ArgusSupport", dependencies: [.product(name: "Metrics", package: "swift-metrics")]),
        // Telemetry domain (pure, no Hummingbird, no Mongo).
        .target(
            name: "Telemetry",
            dependencies: [
                "STBProtocol", "ArgusSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        // CRoaring (Debian's libroaring-dev 0.2.66): roaring bitmaps. No pkg-config file ships with it; the header is
        // in the default include path. Only Ratings imports it (BoxSet).
        .systemLibrary(name: "CRoaring", providers: [.apt(["libroaring-dev"])]),
        // Ratings domain (docs/ratings-method.md), pure: imports only the standard library, swift-crypto (HMAC)
        // and CRoaring (reach sets as roaring bitmaps).
        .target(name: "Ratings", dependencies: ["CRoaring", .product(name: "Crypto", package: "swift-crypto")]),
        // Commands domain (pure, no Hummingbird, no Mongo).
        .target(name: "Commands", dependencies: ["STBProtocol"]),
        // XMLTV (EPG) parser, channel mapping, programme minute slots; imports only Foundation / FoundationXML.
        .target(name: "EPG"),
        // Recommendations (docs/recommendations.md), pure: implicit ALS with the conjugate-gradient
        // solver (SIMD Swift kernels, both cores, deterministic by seed), the interactions parser,
        // holdouts, ranking metrics and the popularity baseline. Imports only the standard library and Foundation.
        .target(name: "Recommend", swiftSettings: recommendSettings),
        // The hub, by product part. Each library target lists what it may import; none of the
        // pure domains above imports these. Cross-module API is `package`, not `public`: it is
        // one product's inside, not a library for others.
        //
        // Persistence: schema and indexes, typed records, repositories, the presence writer,
        // the store bootstrap, credentials (Secrets, roles). No NIO channel code, no HTTP.
        .target(
            name: "ArgusStore",
            dependencies: [
                "MongoStore", "STBProtocol", "Telemetry", "Commands", "ArgusSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The device gateway (SwiftNIO): upgrade and admission, sessions, the registry, the
        // telemetry hand-off to the spool, revocations, the live view's fan-out. No Hummingbird.
        .target(
            name: "HubGateway",
            dependencies: [
                "ArgusStore", "MongoStore", "STBProtocol", "Telemetry", "Commands", "ArgusSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Commands at run time: dispatch to this node's sessions, the job feed, the sweeper,
        // the execution writer, the rollout driver. No Hummingbird.
        .target(
            name: "CommandRuntime",
            dependencies: [
                "HubGateway", "ArgusStore", "MongoStore", "STBProtocol", "Commands", "ArgusSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The operator API (Hummingbird 2): routes, auth middleware, connection guard, live route.
        // Ratings at run time: the leased builder of stored rollups from stored events, the
        // rollup store, and the query service the API calls. No Hummingbird, no NIO.
        .target(
            name: "RatingsRuntime",
            dependencies: [
                "Ratings", "EPG", "Commands", "ArgusStore", "MongoStore", "ArgusSupport", "STBProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Recommendations at run time: the leased trainer (channel model from the stored viewing,
        // evaluated on a time holdout, versions in the store) and the serving service. No
        // Hummingbird, no NIO.
        .target(
            name: "RecommendRuntime",
            dependencies: [
                "Recommend", "RatingsRuntime", "Ratings", "EPG", "ArgusStore", "MongoStore", "ArgusSupport", "Telemetry",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "HubAPI",
            dependencies: [
                "RecommendRuntime", "RatingsRuntime", "Ratings", "EPG", "CommandRuntime", "HubGateway", "ArgusStore", "MongoStore", "STBProtocol", "Telemetry",
                "Commands",
                "ArgusSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]
        ),
        // The composition: `HubConfiguration` and `buildHub(_:)` → a `ServiceGroup`, plus the
        // services that join the parts (telemetry applier loop, shutdown deadline). The
        // executable and the tests both start hubs through it.
        .target(
            name: "Hub",
            dependencies: [
                "HubAPI", "CommandRuntime", "RatingsRuntime", "RecommendRuntime", "Ratings", "EPG", "HubGateway", "ArgusStore", "MongoStore", "STBProtocol",
                "Telemetry", "Commands", "ArgusSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ]
        ),
        // The hub executable: flags and environment → HubConfiguration → buildHub → run.
        .executableTarget(
            name: "ControlServer",
            dependencies: [
                "Hub", "HubAPI", "Ratings", "RatingsRuntime", "CommandRuntime", "HubGateway", "ArgusStore", "MongoStore", "STBProtocol", "Telemetry",
                "Commands", "ArgusSupport", "Recommend", "RecommendRuntime",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ]
        ),
        // libwebsockets, for the C reference agent.
        .systemLibrary(name: "CLibWebSockets", pkgConfig: "libwebsockets", providers: [.apt(["libwebsockets-dev"])]),
        // The C agent's transport-independent core: protocol, commands, telemetry buffer, viewing model.
        .target(
            name: "STBAgentCore",
            cSettings: [.unsafeFlags(["-std=c11", "-Wall", "-Wextra", "-D_GNU_SOURCE"])]
        ),
        // The reference STB agent and fleet simulator (C11, libwebsockets).
        .executableTarget(
            name: "STBAgent",
            dependencies: ["STBAgentCore", "CLibWebSockets"],
            cSettings: [.unsafeFlags(["-std=c11", "-Wall", "-Wextra", "-D_GNU_SOURCE"])]
        ),
        // Unit tests of the agent core against docs/protocol/examples; prints "N passed, N failed".
        .executableTarget(
            name: "STBAgentCoreTests",
            dependencies: ["STBAgentCore"],
            cSettings: [.unsafeFlags(["-std=c11", "-Wall", "-Wextra", "-D_GNU_SOURCE"])]
        ),
        // A stock Hummingbird WebSocket echo server: the peer that scripts/bench/connections measures beside the hub.
        .executableTarget(
            name: "HBEchoBench",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ]
        ),
        // Synthetic viewing → the stored ratings rollups and per-box session CSV: the generator of scripts/bench/ratings.
        .executableTarget(
            name: "RatingsBenchGen",
            dependencies: ["Ratings", "RatingsRuntime", "MongoStore", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "STBProtocolTests", dependencies: ["STBProtocol"]),
        // What tests share: SplitMix64 (seeded randomness for property tests), ManualClock.
        .target(
            name: "ArgusTestSupport",
            dependencies: ["Telemetry", "Commands", "ArgusStore", "MongoStore", .product(name: "Logging", package: "swift-log")],
            path: "Tests/ArgusTestSupport"),
        .testTarget(name: "ArgusSupportTests", dependencies: ["ArgusSupport", "ArgusTestSupport"]),
        .testTarget(name: "MongoStoreTests", dependencies: ["MongoStore", "ArgusTestSupport"]),
        .testTarget(name: "TelemetryTests", dependencies: ["Telemetry", "STBProtocol", "ArgusTestSupport"]),
        .testTarget(name: "CommandsTests", dependencies: ["Commands", "STBProtocol", "ArgusTestSupport"]),
        .testTarget(name: "EPGTests", dependencies: ["EPG"]),
        .testTarget(name: "RecommendTests", dependencies: ["Recommend"]),
        .testTarget(name: "RatingsTests", dependencies: ["Ratings", "ArgusTestSupport"]),
        .testTarget(
            name: "RatingsRuntimeTests",
            dependencies: [
                "RatingsRuntime", "Ratings", "ArgusStore", "MongoStore", "ArgusTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "HubTests",
            dependencies: [
                "Hub", "HubAPI", "CommandRuntime", "RatingsRuntime", "RecommendRuntime", "Recommend", "Ratings", "HubGateway", "ArgusStore", "MongoStore",
                "STBProtocol", "Commands", "Telemetry", "ArgusSupport", "ArgusTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
