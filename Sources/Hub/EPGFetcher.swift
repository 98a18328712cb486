import ArgusStore
import ArgusSupport
import AsyncHTTPClient
import EPG
import Foundation
import Logging
import Metrics
import MongoStore
import NIOCore
import RatingsRuntime
import ServiceLifecycle

/// Imports XMLTV guides from URLs on a schedule (`--epg-source ID=URL`,
/// `--epg-refresh-seconds`). Each fetch replaces its source atomically, like an upload; a fetch
/// that fails (no answer, an HTTP status other than 200, a body over the limit, a feed that does
/// not parse) changes nothing, is logged and counted, and is recorded on the source as
/// `lastError` so `GET /api/v1/epg/sources` shows it. Every node fetches; the import is
/// idempotent, so nodes fetching at once only repeat work.
package final class EPGFetcher: Service, Sendable {
    package struct Source: Sendable, Equatable {
        package var id: String
        package var url: String
        package init(id: String, url: String) {
            self.id = id
            self.url = url
        }
    }

    let sources: [Source]
    let interval: Duration
    let epg: EPGStore
    let ratings: RatingsStore
    let group: any EventLoopGroup
    let gate: ReadinessGate?
    let logger: Logger
    let failures = Counter(label: "argus_epg_fetch_failures_total")
    let imports = Counter(label: "argus_epg_imports_total")

    package init(
        sources: [Source], interval: Duration, store: MongoStore, group: any EventLoopGroup, gate: ReadinessGate?, logger: Logger
    ) {
        self.sources = sources
        self.interval = interval
        epg = EPGStore(store: store)
        ratings = RatingsStore(store: store)
        self.group = group
        self.gate = gate
        self.logger = logger
    }

    package func run() async throws {
        // A service that returns early would end the node: with nothing to fetch, wait for shutdown.
        guard !sources.isEmpty else {
            try? await gracefulShutdown()
            return
        }
        if let gate {
            guard await cancelWhenGracefulShutdown({ await gate.wait() }) == true else { return }
        }
        let client = HTTPClient(eventLoopGroupProvider: .shared(group))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            for source in sources { await fetch(source, client) }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
        try? await client.shutdown()
    }

    func fetch(_ source: Source, _ client: HTTPClient) async {
        do {
            let body = try await download(source.url, client)
            // An unchanged guide is not imported again.
            let fingerprint = Secrets.sha256Hex(body)
            if try await epg.fingerprint(source: source.id) == fingerprint {
                try await epg.recordFetch(source: source.id, url: source.url, error: nil, at: Date())
                return
            }
            let document: EPGDocument
            do { document = try XMLTVParser().parse(body) } catch { throw FetchError("xmltv: \(error)") }
            let known = try await ratings.recentChannels()
            let result = try await epg.replace(
                source: source.id, document, mapping: ChannelMapping(hubChannels: known.isEmpty ? nil : known), now: Date())
            try await epg.recordFetch(source: source.id, url: source.url, error: nil, at: Date(), fingerprint: fingerprint)
            imports.increment()
            logger.info(
                "EPG imported",
                metadata: [LogKey.epgSource: .string(source.id), LogKey.count: .stringConvertible(result.programmes)])
        } catch {
            failures.increment()
            logger.warning(
                "EPG fetch failed; the previous guide stays",
                metadata: [LogKey.epgSource: .string(source.id), LogKey.url: .string(source.url), LogKey.error: .string("\(error)")])
            try? await epg.recordFetch(source: source.id, url: source.url, error: "\(error)", at: Date())
        }
    }

    func download(_ url: String, _ client: HTTPClient) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        let response = try await client.execute(request, timeout: .seconds(60))
        guard response.status == .ok else { throw FetchError("HTTP \(response.status.code) from \(url)") }
        do {
            let buffer = try await response.body.collect(upTo: EPGFetcher.maxBytes)
            return Array(buffer.readableBytesView)
        } catch { throw FetchError("the guide at \(url) is larger than \(EPGFetcher.maxBytes) bytes") }
    }

    /// Largest guide fetched.
    package static let maxBytes = 64 << 20

    struct FetchError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }
}
