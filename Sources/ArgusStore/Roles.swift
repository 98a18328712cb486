import ArgusSupport

/// Operator roles. They are not ranked: what each may do is listed route by route in the
/// access matrix (`Sources/HubAPI/AccessMatrix.swift`), which the API enforces.
package enum Role: String, Sendable, Codable, CaseIterable {
    /// Everything: also tokens and the audit log.
    case admin
    /// The fleet, commands, firmware and rollouts.
    case `operator`
    /// Reads the fleet, runs debug sessions (log pull, live tail, diagnostics), reboots,
    /// messages and reloads the portal; no firmware, rollouts or factory reset.
    case support
    /// Ratings and recommendation aggregates and the fleet summary; no per-box data.
    case analyst
    /// The fleet, read-only.
    case viewer

    /// The roles' names, in the order above, for messages: `admin, operator, …`.
    package static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// Who is calling the operator API.
package struct Principal: Sendable, Equatable {
    /// The token's public id (never the token itself).
    package var tokenId: String
    /// The token's name, e.g. `bootstrap` or `grafana`.
    package var name: String
    package var role: Role

    package init(tokenId: String, name: String, role: Role) {
        self.tokenId = tokenId
        self.name = name
        self.role = role
    }
}
