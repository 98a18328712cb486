import NIOConcurrencyHelpers

/// The live sessions on this node: every upgraded connection, and the one active session per box.
final class ConnectionRegistry: Sendable {
    private struct State {
        var sessions: [ObjectIdentifier: STBConnectionHandler] = [:]
        var byDevice: [String: STBConnectionHandler] = [:]
        /// Model and firmware from the hello of each box's current session.
        var info: [String: (model: String, firmware: String)] = [:]
    }
    private let state = NIOLockedValueBox(State())

    /// A connection finished its upgrade.
    func opened(_ h: STBConnectionHandler) {
        state.withLockedValue { $0.sessions[ObjectIdentifier(h)] = h }
    }

    /// A box said hello. Returns the session it replaces, if any.
    func activate(_ h: STBConnectionHandler, deviceID: String, model: String = "", firmware: String = "") -> STBConnectionHandler? {
        state.withLockedValue { s in
            let old = s.byDevice[deviceID]
            s.byDevice[deviceID] = h
            s.info[deviceID] = (model, firmware)
            return old === h ? nil : old
        }
    }

    /// A connection closed. Returns true if it was its box's current session (so the box is
    /// now offline on this node), false if a newer session had replaced it.
    func closed(_ h: STBConnectionHandler, deviceID: String) -> Bool {
        state.withLockedValue { s in
            s.sessions[ObjectIdentifier(h)] = nil
            if s.byDevice[deviceID] === h { s.byDevice[deviceID] = nil; s.info[deviceID] = nil; return true }
            return false
        }
    }

    /// The current session of a box on this node.
    func session(for deviceID: String) -> STBConnectionHandler? { state.withLockedValue { $0.byDevice[deviceID] } }

    /// The current sessions of those of `devices` connected here, under one lock.
    func sessions(for devices: some Sequence<String>) -> [(String, STBConnectionHandler)] {
        state.withLockedValue { s in devices.compactMap { d in s.byDevice[d].map { (d, $0) } } }
    }

    /// The current sessions here of the boxes `filter` matches, judged by their hello (which
    /// is also what the store holds for them). A tag, or `online: false`, matches none: fleet
    /// jobs with those are resolved from the store instead.
    func sessions(matching filter: DeviceFilter) -> [(String, STBConnectionHandler)] {
        guard filter.tag == nil, filter.online != false else { return [] }
        return state.withLockedValue { s in
            s.byDevice.compactMap { d, h in Self.matches(s.info[d], filter) ? (d, h) : nil }
        }
    }

    /// Whether any box connected here matches `filter` (as ``sessions(matching:)``).
    func anySession(matching filter: DeviceFilter) -> Bool {
        guard filter.tag == nil, filter.online != false else { return false }
        return state.withLockedValue { s in s.byDevice.keys.contains { Self.matches(s.info[$0], filter) } }
    }

    /// Whether the box's current session here matches `filter` (as ``sessions(matching:)``).
    func matches(_ deviceID: String, _ filter: DeviceFilter) -> Bool {
        guard filter.tag == nil, filter.online != false else { return false }
        return state.withLockedValue { s in s.byDevice[deviceID] != nil && Self.matches(s.info[deviceID], filter) }
    }

    private static func matches(_ info: (model: String, firmware: String)?, _ f: DeviceFilter) -> Bool {
        guard let info else { return false }
        if let m = f.model, m != info.model { return false }
        if let fw = f.firmware, fw != info.firmware { return false }
        return true
    }

    /// Every upgraded connection.
    func snapshot() -> [STBConnectionHandler] { state.withLockedValue { Array($0.sessions.values) } }

    /// Boxes with an active session.
    var activeCount: Int { state.withLockedValue { $0.byDevice.count } }
    /// Upgraded connections, active or still awaiting hello.
    var sessionCount: Int { state.withLockedValue { $0.sessions.count } }
}
