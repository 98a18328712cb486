import ArgusStore
import Commands
import HTTPTypes

/// One row of the access matrix: a route (or a live stream) and the roles that may use it.
package struct AccessRule: Sendable, Equatable {
    package enum Kind: String, Sendable {
        /// A plain HTTP route, matched by its method and Hummingbird path pattern.
        case route
        /// A live WebSocket stream on `GET /api/v1/live`, told apart by its query.
        case stream
    }

    package var kind: Kind
    package var method: HTTPRequest.Method
    /// The route's pattern as Hummingbird registers it (`/api/v1/devices/{id}`); for a stream,
    /// the path and its query (`/api/v1/live?device={id}`).
    package var path: String
    package var roles: Set<Role>
    package var summary: String

    package func allows(_ role: Role) -> Bool { roles.contains(role) }
    /// `GET /api/v1/devices/{id}`.
    package var name: String { "\(method.rawValue) \(path)" }
    /// The allowed roles in ``Role`` order.
    package var orderedRoles: [Role] { Role.allCases.filter(roles.contains) }
}

/// Who may send which command (`POST /api/v1/commands`, and cancel its jobs): checked after
/// the route's own rule.
package struct CommandAccessRule: Sendable, Equatable {
    package var command: CommandName
    package var roles: Set<Role>
    package func allows(_ role: Role) -> Bool { roles.contains(role) }
    package var orderedRoles: [Role] { Role.allCases.filter(roles.contains) }
}

/// The one table of route × role. ``AccessMiddleware`` refuses every `/api/` route it does not
/// list, and every role it does not name; ``LiveRoute`` asks it about streams; the operator
/// API refuses to start with a registered route that is missing here
/// (``OperatorAPI/router(_:)``); `GET /api/v1/access` returns it; docs/api.md shows it
/// (checked by `AccessMatrixTests`).
package enum AccessMatrix {
    private static let all = Set(Role.allCases)
    private static let ops: Set<Role> = [.admin, .operator]
    private static let support: Set<Role> = [.admin, .operator, .support]
    /// Who reads the fleet's boxes one by one.
    private static let fleetReaders: Set<Role> = [.admin, .operator, .support, .viewer]
    /// Who reads aggregates of viewing.
    private static let ratings: Set<Role> = [.admin, .operator, .analyst]

    private static func r(_ m: HTTPRequest.Method, _ path: String, _ roles: Set<Role>, _ summary: String) -> AccessRule {
        AccessRule(kind: .route, method: m, path: "/api/v1/" + path, roles: roles, summary: summary)
    }

    package static let rules: [AccessRule] = [
        r(.get, "access", all, "this table and the caller's role"),
        // Devices
        r(.post, "devices", ops, "register a box"),
        r(.post, "devices:batch", ops, "register up to 1,000 boxes"),
        r(.get, "devices", fleetReaders, "list boxes"),
        r(.get, "devices:count", fleetReaders, "how many boxes a filter matches"),
        r(.get, "devices/{id}", fleetReaders, "one box, with presence"),
        r(.post, "devices/{id}/revoke", ops, "revoke a box and disconnect it"),
        r(.post, "devices:tags", ops, "add and remove tags on many boxes (audited)"),
        r(.get, "devices/{id}/executions", support, "a box's commands, newest first, with their state history"),
        // Telemetry
        r(.get, "devices/{id}/metrics", fleetReaders, "a box's health series"),
        r(.get, "devices/{id}/events", ops, "a box's viewing and app events (personal data; audited)"),
        r(.get, "devices/{id}/logs", support, "a box's log lines"),
        r(.get, "fleet/summary", all, "fleet totals by model and firmware, health percentiles"),
        r(.get, "live", all, "the live view without a WebSocket upgrade: says what is wrong"),
        AccessRule(
            kind: .stream, method: .get, path: LiveRoute.path + "?device={id}", roles: ops,
            summary: "one box's telemetry as it arrives (its viewing included; audited)"),
        AccessRule(kind: .stream, method: .get, path: LiveRoute.path + "?fleet=1", roles: all, summary: "fleet counters each second, and alarm changes"),
        // Alarms
        r(.get, "alarms", fleetReaders, "alarms"),
        r(.post, "alarms/{id}/ack", ops, "acknowledge an alarm"),
        // Ratings and the programme guide
        r(.get, "ratings", ratings, "viewing measures by channel, range, bucket, daypart, segment"),
        r(.get, "ratings/export", ratings, "one day's per-box minute credit, pseudonymous (audited)"),
        r(.get, "ratings/live", ratings, "each channel's audience in the last complete minute"),
        r(.get, "ratings/programmes", ratings, "programme ratings"),
        r(.get, "epg/sources", ratings, "programme guide sources"),
        r(.put, "epg/sources/{id}", ops, "import an XMLTV guide"),
        // Recommendations
        r(.get, "devices/{id}/recommendations", ops, "a box's recommended channels, with reasons (derived from its viewing; audited)"),
        r(.get, "recommendations/status", ratings, "the recommendation trainer's progress and model versions"),
        r(.post, "recommendations/train", ops, "train the recommendation model now (audited)"),
        // Commands (which command kinds: ``commandRules``)
        r(.post, "commands", support, "send a command (the kind is checked too)"),
        r(.get, "commands", support, "command jobs"),
        r(.get, "commands/{id}", support, "one job, with executions per state"),
        r(.get, "commands/{id}/executions", support, "a job's executions"),
        r(.get, "commands/{id}/executions/{device}", support, "one box's execution"),
        r(.get, "commands/{id}/executions/{device}/result", support, "download a log pull or diagnostics result (audited)"),
        r(.post, "commands/{id}/cancel", support, "cancel a job (the kind is checked too)"),
        // Firmware and rollouts
        r(.post, "firmware", ops, "add a catalogue entry"),
        r(.get, "firmware", ops, "the firmware catalogue"),
        r(.get, "firmware/{version}", ops, "one catalogue entry"),
        r(.put, "firmware/{version}/image", ops, "upload an image"),
        r(.post, "rollouts", ops, "create a rollout"),
        r(.get, "rollouts", ops, "rollouts"),
        r(.get, "rollouts/{id}", ops, "one rollout, with its waves"),
        r(.post, "rollouts/{id}/pause", ops, "pause a rollout"),
        r(.post, "rollouts/{id}/resume", ops, "resume a rollout"),
        r(.post, "rollouts/{id}/abort", ops, "abort a rollout"),
        // Tokens and audit
        r(.post, "tokens", [.admin], "create a token"),
        r(.get, "tokens", [.admin], "list tokens"),
        r(.delete, "tokens/{id}", [.admin], "revoke a token"),
        r(.get, "audit", [.admin], "the audit log"),
    ]

    package static let commandRules: [CommandAccessRule] = CommandName.allCases.map { name in
        switch name {
        case .reboot, .message, .reloadPortal, .logPull, .logTail, .diagnostics: CommandAccessRule(command: name, roles: support)
        case .firmwareUpdate, .setConfig: CommandAccessRule(command: name, roles: ops)
        case .factoryReset: CommandAccessRule(command: name, roles: [.admin])
        }
    }

    private static let byName: [String: AccessRule] = Dictionary(rules.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

    /// The rule of a registered route: its method and Hummingbird pattern (`context.endpointPath`).
    package static func rule(_ method: HTTPRequest.Method, pattern: String) -> AccessRule? {
        byName["\(method.rawValue) \(pattern)"]
    }

    /// The rule of a live stream (`device` or `fleet`).
    package static func stream(_ query: String) -> AccessRule? {
        rules.first { $0.kind == .stream && $0.path.hasPrefix(LiveRoute.path + "?" + query + "=") }
    }

    package static func command(_ name: CommandName) -> CommandAccessRule? {
        commandRules.first { $0.command == name }
    }

    /// The rule for a concrete request path (`/api/v1/devices/stb-1`): a pattern's `{x}`
    /// matches one non-empty segment; where several match, the most literal segments win.
    package static func match(_ method: HTTPRequest.Method, path: String) -> AccessRule? {
        let segments = split(path)
        var best: (rule: AccessRule, literals: Int)? = nil
        for rule in rules where rule.kind == .route && rule.method == method {
            let pattern = split(rule.path)
            guard pattern.count == segments.count else { continue }
            var literals = 0
            var matches = true
            for (p, s) in zip(pattern, segments) {
                if p.hasPrefix("{") && p.hasSuffix("}") {
                    if s.isEmpty { matches = false }
                } else if p == s {
                    literals += 1
                } else {
                    matches = false
                }
                if !matches { break }
            }
            if matches, literals > (best?.literals ?? -1) { best = (rule, literals) }
        }
        return best?.rule
    }

    /// The registered `/api/` routes (as `GET /api/v1/x`) that have no rule; empty when all do.
    package static func unlisted(_ routes: [(method: HTTPRequest.Method, path: String)]) -> [String] {
        routes.filter { $0.path.hasPrefix("/api/") && rule($0.method, pattern: $0.path) == nil }.map { "\($0.method.rawValue) \($0.path)" }
    }

    /// The 403 message: what the route needs and what the token has.
    package static func refusal(_ what: String, roles: [Role], has role: Role) -> String {
        let need = roles.count == 1 ? "the \(roles[0].rawValue) role" : "one of the roles \(roles.map(\.rawValue).joined(separator: ", "))"
        return "\(what) needs \(need); the token has \(role.rawValue)"
    }

    private static func split(_ path: String) -> [Substring] {
        path.split(separator: "?", maxSplits: 1).first.map { $0.split(separator: "/", omittingEmptySubsequences: false) } ?? []
    }
}
