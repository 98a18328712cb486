import Commands
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import ArgusStore
@testable import HubAPI

/// The access matrix: lookups by pattern and by concrete path, the roles the issue asks for,
/// the middleware's refusal of a route the matrix does not list, and docs/api.md.
@Suite("Access matrix")
struct AccessMatrixTests {
    @Test func everyRuleIsUniqueAndNamesAtLeastAdmin() {
        let names = AccessMatrix.rules.map(\.name)
        #expect(Set(names).count == names.count, "a route listed twice")
        for r in AccessMatrix.rules {
            #expect(r.allows(.admin), "admin may do everything: \(r.name)")
            #expect(r.path.hasPrefix("/api/v1/"), "\(r.name)")
            #expect(!r.summary.isEmpty)
        }
        #expect(Set(AccessMatrix.commandRules.map(\.command)) == Set(CommandName.allCases))
    }

    @Test func patternsMatchConcretePathsWithParameters() {
        func m(_ method: HTTPRequest.Method, _ path: String) -> String? { AccessMatrix.match(method, path: path)?.path }
        #expect(m(.get, "/api/v1/devices") == "/api/v1/devices")
        #expect(m(.get, "/api/v1/devices/stb-1") == "/api/v1/devices/{id}")
        #expect(m(.post, "/api/v1/devices:batch") == "/api/v1/devices:batch")
        #expect(m(.get, "/api/v1/devices/stb-1/events?from=1") == "/api/v1/devices/{id}/events")
        #expect(m(.get, "/api/v1/commands/j1/executions/stb-1/result") == "/api/v1/commands/{id}/executions/{device}/result")
        #expect(m(.get, "/api/v1/commands/j1/executions/stb-1") == "/api/v1/commands/{id}/executions/{device}")
        #expect(m(.post, "/api/v1/rollouts/r1/pause") == "/api/v1/rollouts/{id}/pause")
        // A literal segment beats a parameter: /ratings/live is not /ratings/{x}.
        #expect(m(.get, "/api/v1/ratings/live") == "/api/v1/ratings/live")
        #expect(m(.put, "/api/v1/firmware/1.2.3/image") == "/api/v1/firmware/{version}/image")
        // Wrong method, empty parameter, extra or missing segments: no rule.
        #expect(m(.delete, "/api/v1/devices/stb-1") == nil)
        #expect(m(.get, "/api/v1/devices/") == nil)
        #expect(m(.get, "/api/v1/devices/a/b") == nil)
        #expect(m(.get, "/api/v1/nothing") == nil)
        #expect(AccessMatrix.rule(.get, pattern: "/api/v1/devices/{id}")?.summary == "one box, with presence")
        #expect(AccessMatrix.rule(.get, pattern: "/api/v1/devices/stb-1") == nil)
    }

    @Test func rolesAreWhatTheIssueSays() {
        func may(_ role: Role, _ method: HTTPRequest.Method, _ path: String) -> Bool {
            AccessMatrix.match(method, path: path)?.allows(role) ?? false
        }
        // admin: everything; tokens and audit only admin.
        #expect(AccessMatrix.rules.allSatisfy { $0.allows(.admin) })
        for role in [Role.operator, .support, .analyst, .viewer] {
            #expect(!may(role, .post, "/api/v1/tokens") && !may(role, .get, "/api/v1/audit"))
            #expect(may(role, .get, "/api/v1/access") && may(role, .get, "/api/v1/fleet/summary"))
        }
        // operator: fleet, commands, firmware, rollouts.
        #expect(may(.operator, .post, "/api/v1/devices") && may(.operator, .post, "/api/v1/rollouts/r/abort"))
        #expect(may(.operator, .put, "/api/v1/firmware/1/image") && may(.operator, .get, "/api/v1/devices/d/events"))
        // support: reads the fleet and debugs, no firmware, rollouts, registration, per-box viewing.
        #expect(may(.support, .get, "/api/v1/devices/d/logs") && may(.support, .post, "/api/v1/commands"))
        #expect(may(.support, .get, "/api/v1/commands/j/executions/d/result"))
        #expect(!may(.support, .get, "/api/v1/firmware") && !may(.support, .post, "/api/v1/rollouts"))
        #expect(!may(.support, .get, "/api/v1/rollouts") && !may(.support, .post, "/api/v1/devices"))
        #expect(!may(.support, .get, "/api/v1/devices/d/events") && AccessMatrix.stream("device")?.allows(.support) == false)
        // analyst: aggregates only, no per-box data.
        #expect(may(.analyst, .get, "/api/v1/ratings") && may(.analyst, .get, "/api/v1/ratings/programmes"))
        for path in ["/api/v1/devices", "/api/v1/devices/d", "/api/v1/devices/d/metrics", "/api/v1/devices/d/logs", "/api/v1/commands", "/api/v1/alarms"] {
            #expect(!may(.analyst, .get, path), "\(path)")
        }
        #expect(AccessMatrix.stream("fleet")?.allows(.analyst) == true && AccessMatrix.stream("device")?.allows(.analyst) == false)
        // viewer: the fleet, read-only.
        let viewer = AccessMatrix.rules.filter { $0.allows(.viewer) }
        #expect(viewer.allSatisfy { $0.method == .get })
        #expect(may(.viewer, .get, "/api/v1/devices") && may(.viewer, .get, "/api/v1/alarms") && !may(.viewer, .get, "/api/v1/ratings"))
        // Command kinds.
        func sends(_ role: Role, _ name: CommandName) -> Bool { AccessMatrix.command(name)?.allows(role) ?? false }
        for name in [CommandName.reboot, .message, .reloadPortal, .logPull, .logTail, .diagnostics] { #expect(sends(.support, name), "\(name)") }
        #expect(!sends(.support, .factoryReset) && !sends(.support, .firmwareUpdate) && !sends(.support, .setConfig))
        #expect(sends(.operator, .firmwareUpdate) && !sends(.operator, .factoryReset) && sends(.admin, .factoryReset))
        #expect(CommandName.allCases.allSatisfy { !sends(.analyst, $0) && !sends(.viewer, $0) })
    }

    @Test func unlistedRoutesAreFoundAndRefused() async throws {
        #expect(AccessMatrix.unlisted([(.get, "/api/v1/devices"), (.get, "/healthz"), (.post, "/api/v1/secret/{id}")]) == ["POST /api/v1/secret/{id}"])
        // A route added without a rule answers 403 to every role, admin included.
        let router = Router(context: HubRequestContext.self)
        router.add(middleware: InjectCaller(role: .admin))
        router.add(middleware: AccessMiddleware(logger: .init(label: "t")))
        router.get("/api/v1/secret") { _, _ in "leaked" }
        AccessRoutes.add(router.group("api/v1"))
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/secret", method: .get) { r in
                #expect(r.status == .forbidden)
                #expect(String(buffer: r.body).contains("no access rule"))
            }
            try await client.execute(uri: "/api/v1/access", method: .get) { r in
                #expect(r.status == .ok)
                let body = try #require(JSONSerialization.jsonObject(with: Data(r.body.readableBytesView)) as? [String: Any])
                #expect(body["role"] as? String == "admin")
                #expect((body["routes"] as? [Any])?.count == AccessMatrix.rules.count)
            }
        }
    }

    @Test func aRoleTheRuleDoesNotNameGets403NamingTheRoles() async throws {
        let router = Router(context: HubRequestContext.self)
        router.add(middleware: InjectCaller(role: .analyst))
        router.add(middleware: AccessMiddleware(logger: .init(label: "t")))
        router.get("/api/v1/devices/{id}") { _, _ in "box" }
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/devices/stb-1", method: .get) { r in
                #expect(r.status == .forbidden)
                let body = try #require(JSONSerialization.jsonObject(with: Data(r.body.readableBytesView)) as? [String: [String: String]])
                #expect(body["error"]?["message"] == "GET /api/v1/devices/{id} needs one of the roles admin, operator, support, viewer; the token has analyst")
            }
        }
    }

    /// docs/api.md carries the matrix between its markers. `ARGUS_UPDATE_DOCS=1` rewrites it.
    @Test func docsShowTheMatrix() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/api.md").standardized
        let doc = try String(contentsOf: url, encoding: .utf8)
        let rendered = try #require(AccessRoutes.render(into: doc), "docs/api.md has no access-matrix markers")
        if ProcessInfo.processInfo.environment["ARGUS_UPDATE_DOCS"] == "1", rendered != doc {
            try rendered.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        #expect(rendered == doc, "docs/api.md's access matrix is out of date: regenerate it with ARGUS_UPDATE_DOCS=1 swift test --filter AccessMatrixTests")
    }
}

/// Stands in for ``TokenAuthMiddleware``: every request comes from a token with `role`.
private struct InjectCaller: RouterMiddleware {
    typealias Context = HubRequestContext
    let role: Role
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.principal = Principal(tokenId: "t1", name: "test", role: role)
        return try await next(request, context)
    }
}
