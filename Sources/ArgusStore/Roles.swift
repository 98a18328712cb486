import ArgusSupport

/// Operator roles. Each route names the least role it needs.
package enum Role: String, Sendable, Codable, CaseIterable, Comparable {
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

    package static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }

    /// True when a holder of `self` may use a route that needs `required`.
    package func allows(_ required: Role) -> Bool { self >= required }
}

/// Who is calling the operator API.
package struct Principal: Sendable, Equatable {
    /// The token's public id (never the token itself).
    package var tokenId: String
    /// The token's name, e.g. `bootstrap` or `grafana`.
    package var name: String
    package var role: Role
}
