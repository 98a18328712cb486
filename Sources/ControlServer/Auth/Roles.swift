/// Operator roles. Each route names the least role it needs.
enum Role: String, Sendable, Codable, CaseIterable, Comparable {
    /// Reads ratings, recommendations and fleet state.
    case analyst
    /// Also registers and revokes boxes and sends commands.
    case `operator`
    /// Also manages tokens and reads the audit log.
    case admin

    private var rank: Int {
        switch self {
        case .analyst: return 0
        case .operator: return 1
        case .admin: return 2
        }
    }

    static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }

    /// True when a holder of `self` may use a route that needs `required`.
    func allows(_ required: Role) -> Bool { self >= required }
}

/// Who is calling the operator API.
struct Principal: Sendable, Equatable {
    /// The token's public id (never the token itself).
    var tokenId: String
    /// The token's name, e.g. `bootstrap` or `grafana`.
    var name: String
    var role: Role
}
