import Commands
import NIOCore
import STBProtocol

/// A box's session as other threads hold it: a `Sendable` value that reaches the
/// ``STBConnectionHandler`` only on the handler's event loop.
///
/// The handler itself is not `Sendable`: its state belongs to its channel's event loop, and
/// the compiler enforces that. The registry, the command runtime, the revocation feed and the
/// telemetry ingest keep handles; every method here runs the call on the loop (at once when
/// already on it). Identity is the session id, random per connection, so a finished-execution
/// memory can keep it without keeping the connection alive.
package struct SessionHandle: Sendable, Hashable, DispatchSession {
    /// The session id sent in `welcome` (unique per connection).
    package let id: String
    package let deviceID: String
    package let eventLoop: any EventLoop
    private let handler: NIOLoopBound<STBConnectionHandler>

    /// Must be called on the handler's event loop.
    init(_ handler: STBConnectionHandler) {
        id = handler.session
        deviceID = handler.deviceID
        eventLoop = handler.eventLoop
        self.handler = NIOLoopBound(handler, eventLoop: handler.eventLoop)
    }

    /// Sends a `command` frame (one buffer shared by every box of a job).
    package func sendCommand(_ frame: ByteBuffer) { run { $0.sendCommand(frame) } }

    /// Ends the session with a close frame.
    package func close(_ code: CloseCode) { run { $0.close(code) } }

    /// Liveness check (the gateway's sweeper).
    package func sweep(now: NIODeadline) { run { $0.sweep(now: now) } }

    /// The spool drained: read from the socket again.
    package func resumeReading() { run { $0.resumeReading() } }

    /// Whether this is the session `h` (on `h`'s loop, e.g. in tests).
    package func refers(to h: STBConnectionHandler) -> Bool { id == h.session }

    /// Runs `body` on each handle's handler with one task per event loop, not one per session
    /// (a fan-out to 100,000 boxes is a few tasks). `done` runs on each loop after its batch.
    package static func forEach(
        _ handles: some Sequence<SessionHandle>, done: (@Sendable () -> Void)? = nil,
        _ body: @escaping @Sendable (STBConnectionHandler) -> Void
    ) {
        var byLoop: [ObjectIdentifier: (any EventLoop, [NIOLoopBound<STBConnectionHandler>])] = [:]
        for h in handles { byLoop[ObjectIdentifier(h.eventLoop), default: (h.eventLoop, [])].1.append(h.handler) }
        for (_, (loop, batch)) in byLoop {
            loop.execute {
                for h in batch { body(h.value) }
                done?()
            }
        }
    }

    /// How many event loops `handles` span (for callers that wait on every batch).
    package static func loopCount(_ handles: some Sequence<SessionHandle>) -> Int {
        Set(handles.map { ObjectIdentifier($0.eventLoop) }).count
    }

    private func run(_ body: @escaping @Sendable (STBConnectionHandler) -> Void) {
        if eventLoop.inEventLoop {
            body(handler.value)
        } else {
            let handler = handler
            eventLoop.execute { body(handler.value) }
        }
    }

    package static func == (a: SessionHandle, b: SessionHandle) -> Bool { a.id == b.id }
    package func hash(into h: inout Hasher) { h.combine(id) }
}
