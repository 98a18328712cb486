import Foundation
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import Testing

@testable import Hub

/// `buildHub` is how the executable starts a node; here a test starts one in-process against
/// the real store, reaches both ports, and stops it with a graceful shutdown.
@Suite("buildHub against the database")
struct BuildHubTests {
    static func freePort() async throws -> Int {
        let ch = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(ch.localAddress?.port)
        try await ch.close()
        return port
    }

    /// One HTTP/1.1 request over a plain socket; returns the raw response.
    static func get(_ path: String, port: Int) async throws -> String {
        let ch = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await ch.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
            var response = ""
            for try await var b in inbound { response += b.readString(length: b.readableBytes) ?? "" }
            return response
        }
    }

    @Test func aBuiltHubServesBothPortsAndStopsGracefully() async throws {
        guard let uri = ProcessInfo.processInfo.environment["MONGODB_URI"] else {
            Issue.record("MONGODB_URI is not set: run through scripts/test")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("buildhub-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = HubConfiguration()
        c.mongodbURI = uri
        c.database = "buildhub_" + UUID().uuidString.prefix(8).lowercased()
        c.devicePort = try await Self.freePort()
        c.apiPort = try await Self.freePort()
        c.spoolDir = dir.appendingPathComponent("spool").path
        c.tokenFile = dir.appendingPathComponent("admin-token").path
        c.threads = 2
        c.storeThreads = 2
        c.drainTimeout = 5
        let group = try buildHub(c, metrics: PrometheusCollectorRegistry(), logger: Logger(label: "t"))
        let running = Task { try await group.run() }

        // Ready once the store is set up: /healthz answers 200.
        var health = ""
        for _ in 0..<100 {
            health = (try? await Self.get("/healthz", port: c.apiPort)) ?? ""
            if health.hasPrefix("HTTP/1.1 200") { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(health.hasPrefix("HTTP/1.1 200"), "healthz: \(health.prefix(200))")
        // The device port answers a plain GET (not an upgrade) with a refusal, not a hang.
        let device = try await Self.get("/v1/stb", port: c.devicePort)
        #expect(device.hasPrefix("HTTP/1.1 4"), "device port: \(device.prefix(200))")
        // The bootstrap wrote the first admin token where it was told to.
        #expect(FileManager.default.fileExists(atPath: c.tokenFile))

        await group.triggerGracefulShutdown()
        try await running.value
        // Stopped: the API port no longer accepts.
        await #expect(throws: (any Error).self) { _ = try await Self.get("/healthz", port: c.apiPort) }
    }
}
