import ArgusStore
import ArgusSupport
import NIOConcurrencyHelpers
import Synchronization

/// The live sessions on this node: every upgraded connection, and the one active session per box.
package final class ConnectionRegistry: Sendable {
    package init() {}

    /// A box's current session, with the model and firmware from its hello.
    private struct Active {
        var handler: SessionHandle
        var model: String
        var firmware: String

        /// Judged by the hello, which is also what the store holds for the box.
        func matches(_ f: DeviceFilter) -> Bool {
            f.answerableBySessions && (f.model.map { $0 == model } ?? true) && (f.firmware.map { $0 == firmware } ?? true)
        }
    }
    private struct State {
        var sessions: [String: SessionHandle] = [:]
        var byDevice: [String: Active] = [:]
        /// Boxes that said hello, and current sessions that ended, since the node started
        /// (the fleet live view turns them into connects and disconnects per minute).
        var connects = 0
        var disconnects = 0
    }
    private let state = Mutex(State())

    /// A connection finished its upgrade.
    package func opened(_ h: SessionHandle) {
        state.withLock { $0.sessions[h.id] = h }
    }

    /// A box said hello. Returns the session it replaces, if any.
    package func activate(_ h: SessionHandle, model: String = "", firmware: String = "") -> SessionHandle? {
        state.withLock { s in
            let old = s.byDevice.updateValue(Active(handler: h, model: model, firmware: firmware), forKey: h.deviceID)?.handler
            s.connects += 1
            return old == h ? nil : old
        }
    }

    /// A connection closed. Returns true if it was its box's current session (so the box is
    /// now offline on this node), false if a newer session had replaced it.
    package func closed(_ h: SessionHandle) -> Bool {
        state.withLock { s in
            s.sessions[h.id] = nil
            if s.byDevice[h.deviceID]?.handler == h {
                s.byDevice[h.deviceID] = nil
                s.disconnects += 1
                return true
            }
            return false
        }
    }

    /// The current session of a box on this node.
    package func session(for deviceID: String) -> SessionHandle? { state.withLock { $0.byDevice[deviceID]?.handler } }

    /// The current sessions of those of `devices` connected here, under one lock.
    package func sessions(for devices: some Sequence<String>) -> [(String, SessionHandle)] {
        state.withLock { s in devices.compactMap { d in s.byDevice[d].map { (d, $0.handler) } } }
    }

    /// The current sessions here of the boxes `filter` matches (none unless
    /// ``DeviceFilter/answerableBySessions``).
    package func sessions(matching filter: DeviceFilter) -> [(String, SessionHandle)] {
        state.withLock { s in s.byDevice.compactMap { d, a in a.matches(filter) ? (d, a.handler) : nil } }
    }

    /// Whether any box connected here matches `filter`.
    package func anySession(matching filter: DeviceFilter) -> Bool {
        state.withLock { s in s.byDevice.values.contains { $0.matches(filter) } }
    }

    /// Whether the box's current session here matches `filter`.
    package func matches(_ deviceID: String, _ filter: DeviceFilter) -> Bool {
        state.withLock { s in s.byDevice[deviceID]?.matches(filter) ?? false }
    }

    /// Every upgraded connection.
    package func snapshot() -> [SessionHandle] { state.withLock { Array($0.sessions.values) } }

    /// Boxes with an active session.
    package var activeCount: Int { state.withLock { $0.byDevice.count } }
    /// Hellos and ended current sessions since the node started.
    package var presenceCounts: (connects: Int, disconnects: Int) { state.withLock { ($0.connects, $0.disconnects) } }
    /// Upgraded connections, active or still awaiting hello.
    package var sessionCount: Int { state.withLock { $0.sessions.count } }
}
