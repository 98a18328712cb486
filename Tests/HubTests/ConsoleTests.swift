import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

@testable import ArgusStore
@testable import HubAPI

/// The console's serving (files read once, served from memory with a strict policy), the
/// fleet summary cache, and the device list's search query.
@Suite("Console")
struct ConsoleTests {
    func tempConsole(_ files: [String: String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("console-\(UUID().uuidString)")
        for (path, text) in files {
            let url = dir.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        return dir.path
    }

    @Test func assetsAreReadOnceAndOnlyKnownTypesAreServed() throws {
        let dir = try tempConsole(["index.html": "<p>x</p>", "js/app.js": "export {}", "notes.txt": "secret", "style.css": "p{}"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let assets = try ConsoleAssets(directory: dir, chartJS: [])
        #expect(Set(assets.files.keys) == ["index.html", "js/app.js", "style.css"])
        #expect(assets.files["js/app.js"]?.contentType.hasPrefix("text/javascript") == true)
    }

    @Test func aDirectoryWithoutIndexIsRefused() throws {
        let dir = try tempConsole(["app.js": ""])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: ConsoleError.self) { try ConsoleAssets(directory: dir, chartJS: []) }
    }

    @Test func thePolicyAllowsNoInlineScriptAndNamesOnlyAPlainHost() {
        let csp = ConsoleRoutes.contentSecurityPolicy(host: "hub.example:8080")
        #expect(csp.contains("script-src 'self';") && csp.contains("object-src 'none'") && csp.contains("frame-ancestors 'none'"))
        #expect(csp.contains("connect-src 'self' ws://hub.example:8080 wss://hub.example:8080;"))
        #expect(!csp.contains("unsafe"))
        // A Host header with anything else is not echoed into the policy.
        #expect(ConsoleRoutes.contentSecurityPolicy(host: "evil; script-src *").contains("connect-src 'self';"))
    }

    @Test func theConsoleIsServedWithItsPolicyAndUnknownPathsAre404() async throws {
        let dir = try tempConsole(["index.html": "<p>console</p>", "js/app.js": "export {}"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let router = Router()
        ConsoleRoutes.add(router, try ConsoleAssets(directory: dir, chartJS: []))
        let app = Application(router: router)
        try await app.test(.router) { client in
            for path in ["/console", "/console/", "/console/js/app.js"] {
                try await client.execute(uri: path, method: .get) { r in
                    #expect(r.status == .ok, "\(path)")
                    #expect(r.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
                }
            }
            for path in ["/console/../Package.swift", "/console/js/missing.js", "/console/notes.txt"] {
                try await client.execute(uri: path, method: .get) { r in #expect(r.status == .notFound, "\(path)") }
            }
        }
    }

    @Test func theSummaryCacheAnswersFromMemoryOnlyWithinTheAgeAsked() async throws {
        let cache = FleetSummaryCache()
        let calls = Counter()
        func compute() async throws -> FleetSummary {
            let n = calls.next()
            return FleetSummary(total: n, online: 0, byModel: [:], byFirmware: [:], health: [:])
        }
        let t0 = Date()
        #expect(try await cache.get(maxAge: 60, now: t0, compute: compute).total == 1)
        #expect(try await cache.get(maxAge: 60, now: t0.addingTimeInterval(30), compute: compute).total == 1)
        #expect(try await cache.get(maxAge: 0, now: t0.addingTimeInterval(30), compute: compute).total == 2)
        #expect(try await cache.get(maxAge: 10, now: Date().addingTimeInterval(11), compute: compute).total == 3)
    }

    @Test func theSearchIsAPrefixOfTheIdOrTheAddress() {
        let q = DeviceRepository.query(DeviceFilter(model: "m"), search: "10.0.")
        #expect(q["model"] == .string("m"))
        guard case .array(let alternatives)? = q["$or"] else {
            Issue.record("no $or")
            return
        }
        #expect(alternatives.count == 2)
        #expect(DeviceRepository.query(DeviceFilter(), search: nil)["$or"] == nil)
        #expect(DeviceRepository.query(DeviceFilter(), search: "")["$or"] == nil)
    }
}

/// A counter the summary's compute closure bumps.
final class Counter: Sendable {
    private let n = Mutex(0)
    func next() -> Int {
        n.withLock {
            $0 += 1; return $0
        }
    }
}
