import ArgusStore
import ArgusSupport
import HTTPTypes
import Hummingbird
import Logging
import STBProtocol

/// Enforces ``AccessMatrix`` on every `/api/` route, after ``TokenAuthMiddleware``: the
/// route the router matched (`context.endpointPath`, its pattern) must have a rule, and the
/// rule must name the caller's role; otherwise 403. Hummingbird runs a router's middleware
/// after the route is matched, so the pattern is known here; an unknown path has none and
/// goes on to the 404.
package struct AccessMiddleware: RouterMiddleware {
    package typealias Context = HubRequestContext
    package let logger: Logger

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/api/"), let pattern = context.endpointPath else { return try await next(request, context) }
        let who = try context.caller()
        guard let rule = AccessMatrix.rule(request.method, pattern: pattern) else {
            logger.error(
                "route without an access rule refused", metadata: [LogKey.httpPath: .string(pattern), LogKey.httpMethod: .string(request.method.rawValue)])
            throw HTTPError(.forbidden, message: "\(request.method.rawValue) \(pattern) has no access rule; it is refused to every role")
        }
        guard rule.allows(who.role) else {
            throw HTTPError(.forbidden, message: AccessMatrix.refusal(rule.name, roles: rule.orderedRoles, has: who.role))
        }
        return try await next(request, context)
    }
}

extension HubRequestContext {
    /// The caller, whom ``AccessMiddleware`` has let through; 401 without one (not reached:
    /// ``TokenAuthMiddleware`` refuses first).
    package func caller() throws -> Principal {
        guard let p = principal else { throw HTTPError(.unauthorized, message: "an API token is required") }
        return p
    }

    /// 403 unless `rule` names the caller's role: for what a route decides from its query or
    /// body (a live stream, a command kind).
    package func check(_ rule: AccessRule) throws -> Principal {
        let p = try caller()
        guard rule.allows(p.role) else { throw HTTPError(.forbidden, message: AccessMatrix.refusal(rule.name, roles: rule.orderedRoles, has: p.role)) }
        return p
    }
}

/// `GET /api/v1/access` and the matrix's renderings (JSON for the API, Markdown for docs/api.md).
package enum AccessRoutes {
    package static func add(_ api: RouterGroup<HubRequestContext>) {
        api.get("access") { _, context -> Response in
            let who = try context.caller()
            return CommandRoutes.json(.ok, AccessRoutes.json(for: who))
        }
    }

    /// `{role, token: {id, name}, roles, routes: [{kind, method, path, roles, allowed, summary}],
    /// commands: [{name, roles, allowed}]}`; `allowed` is for the caller.
    package static func json(for who: Principal) -> JSONValue {
        func roles(_ rs: [Role]) -> JSONValue { .array(rs.map { .string($0.rawValue) }) }
        let routes: [JSONValue] = AccessMatrix.rules.map { r in
            .object([
                ("kind", .string(r.kind.rawValue)), ("method", .string(r.method.rawValue)), ("path", .string(r.path)),
                ("roles", roles(r.orderedRoles)), ("allowed", .bool(r.allows(who.role))), ("summary", .string(r.summary)),
            ])
        }
        let commands: [JSONValue] = AccessMatrix.commandRules.map { c in
            .object([("name", .string(c.command.rawValue)), ("roles", roles(c.orderedRoles)), ("allowed", .bool(c.allows(who.role)))])
        }
        return .object([
            ("role", .string(who.role.rawValue)), ("token", .object([("id", .string(who.tokenId)), ("name", .string(who.name))])),
            ("roles", roles(Role.allCases)), ("routes", .array(routes)), ("commands", .array(commands)),
        ])
    }

    package static let beginMarker = "<!-- access-matrix:begin (generated from Sources/HubAPI/AccessMatrix.swift; do not edit) -->"
    package static let endMarker = "<!-- access-matrix:end -->"

    /// The matrix as Markdown tables: routes and streams × roles, then command kinds × roles.
    package static func markdown() -> String {
        let header = "| method | path | " + Role.allCases.map(\.rawValue).joined(separator: " | ") + " | what |"
        let rule = "|---|---|" + String(repeating: ":---:|", count: Role.allCases.count) + "---|"
        func marks(_ allows: (Role) -> Bool) -> String { Role.allCases.map { allows($0) ? "✓" : "" }.joined(separator: " | ") }
        var lines = [header, rule]
        for r in AccessMatrix.rules {
            let method = r.kind == .stream ? "WS" : r.method.rawValue
            lines.append("| \(method) | `\(r.path)` | \(marks(r.allows)) | \(r.summary) |")
        }
        lines += ["", "| command (`POST /api/v1/commands`, cancel) | " + Role.allCases.map(\.rawValue).joined(separator: " | ") + " |"]
        lines.append("|---|" + String(repeating: ":---:|", count: Role.allCases.count))
        for c in AccessMatrix.commandRules { lines.append("| `\(c.command.rawValue)` | \(marks(c.allows)) |") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `doc` with the text between the markers replaced by ``markdown()``; nil without markers.
    package static func render(into doc: String) -> String? {
        guard let b = doc.range(of: beginMarker), let e = doc.range(of: endMarker), b.upperBound <= e.lowerBound else { return nil }
        return String(doc[..<b.upperBound]) + "\n" + markdown() + String(doc[e.lowerBound...])
    }
}
