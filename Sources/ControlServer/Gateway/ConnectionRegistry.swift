import NIOConcurrencyHelpers

/// The live sessions on this node: every upgraded connection, and the one active session per box.
final class ConnectionRegistry: Sendable {
    private struct State {
        var sessions: [ObjectIdentifier: STBConnectionHandler] = [:]
        var byDevice: [String: STBConnectionHandler] = [:]
    }
    private let state = NIOLockedValueBox(State())

    /// A connection finished its upgrade.
    func opened(_ h: STBConnectionHandler) {
        state.withLockedValue { $0.sessions[ObjectIdentifier(h)] = h }
    }

    /// A box said hello. Returns the session it replaces, if any.
    func activate(_ h: STBConnectionHandler, deviceID: String) -> STBConnectionHandler? {
        state.withLockedValue { s in
            let old = s.byDevice[deviceID]
            s.byDevice[deviceID] = h
            return old === h ? nil : old
        }
    }

    /// A connection closed. Returns true if it was its box's current session (so the box is
    /// now offline on this node), false if a newer session had replaced it.
    func closed(_ h: STBConnectionHandler, deviceID: String) -> Bool {
        state.withLockedValue { s in
            s.sessions[ObjectIdentifier(h)] = nil
            if s.byDevice[deviceID] === h { s.byDevice[deviceID] = nil; return true }
            return false
        }
    }

    /// The current session of a box on this node.
    func session(for deviceID: String) -> STBConnectionHandler? { state.withLockedValue { $0.byDevice[deviceID] } }

    /// The current sessions of those of `devices` connected here, under one lock.
    func sessions(for devices: some Sequence<String>) -> [(String, STBConnectionHandler)] {
        state.withLockedValue { s in devices.compactMap { d in s.byDevice[d].map { (d, $0) } } }
    }

    /// Every upgraded connection.
    func snapshot() -> [STBConnectionHandler] { state.withLockedValue { Array($0.sessions.values) } }

    /// Boxes with an active session.
    var activeCount: Int { state.withLockedValue { $0.byDevice.count } }
    /// Upgraded connections, active or still awaiting hello.
    var sessionCount: Int { state.withLockedValue { $0.sessions.count } }
}
