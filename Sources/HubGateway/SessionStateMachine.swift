import ArgusStore
import ArgusSupport
import NIOCore
import STBProtocol

/// The life of one box's WebSocket session, as a value type that returns actions. The
/// connection handler carries the actions out; tests drive it with explicit instants.
///
/// awaitingHello --hello--> active --(close)--> closed
/// Liveness: any inbound frame counts as activity. After `pingAfter` of silence the hub sends
/// a WebSocket ping; after `idleTimeout` it closes with 4002. A session that has not said
/// hello within `helloTimeout` is closed with 4003.
package struct SessionStateMachine {
    package enum State: Equatable {
        case awaitingHello
        case active(Hello)
        case closed
    }

    /// What to do about an inbound message.
    package enum FrameAction: Equatable {
        case welcome(Hello)
        case pong(ref: String?)
        /// Telemetry from the active session, with the boot it belongs to.
        case ingest(bootId: String, ref: String?, [TelemetryMessage], rejected: [ProtocolError])
        /// A `recommendations` request (since 1.2) from the active session, with the model its
        /// hello named (the cold-start segment).
        case recommend(ref: String?, n: Int, model: String)
        case sendError(ProtocolError)
        case sendErrorAndClose(ProtocolError, CloseCode)
        case ignore
    }

    /// What to do when the sweeper looks at the session.
    package enum TickAction: Equatable {
        case none
        case sendPing
        case close(CloseCode)
    }

    package struct Timing: Equatable {
        package var helloTimeout: TimeAmount
        package var pingAfter: TimeAmount
        package var idleTimeout: TimeAmount
    }

    /// Invalid frames tolerated before hello; a box that cannot say hello is cut off.
    package static let maxErrorsBeforeHello = 5

    private(set) var state: State = .awaitingHello
    private(set) var lastActivity: NIODeadline
    private let openedAt: NIODeadline
    private var pingOutstanding = false
    private var errorsBeforeHello = 0
    package let timing: Timing

    package init(now: NIODeadline, timing: Timing) {
        self.openedAt = now
        self.lastActivity = now
        self.timing = timing
    }

    /// Any frame from the box, including pongs.
    package mutating func activity(now: NIODeadline) {
        lastActivity = now
        pingOutstanding = false
    }

    /// A decoded (or rejected) text frame.
    package mutating func received(_ result: Result<InboundMessage, ProtocolError>) -> FrameAction {
        switch (state, result) {
        case (.closed, _):
            return .ignore
        case (.awaitingHello, .success(.hello(let h))):
            state = .active(h)
            return .welcome(h)
        case (.awaitingHello, .success(let other)):
            state = .closed
            return .sendErrorAndClose(ProtocolError(.helloRequired, "the first message must be hello", ref: other.ref), .helloRequired)
        case (.awaitingHello, .failure(let e)):
            return rejectBeforeHello(e)
        case (.active, .success(.hello(let h))):
            return .sendError(ProtocolError(.duplicateHello, "hello was already received in this session", ref: h.envelope.id))
        case (.active, .success(.ping(let p))):
            return .pong(ref: p.envelope.id)
        case (.active(let h), .success(.telemetry(let env, let messages, let rejected))):
            return .ingest(bootId: h.bootId, ref: env.id, messages, rejected: rejected)
        case (.active(let h), .success(.recommendations(let r))):
            return .recommend(ref: r.envelope.id, n: r.n, model: h.model)
        case (.active, .failure(let e)):
            return .sendError(e)
        }
    }

    /// A frame the protocol does not accept at all (binary, fragmented, oversized).
    package mutating func rejected(_ e: ProtocolError) -> FrameAction {
        switch state {
        case .closed: return .ignore
        case .awaitingHello: return rejectBeforeHello(e)
        case .active: return .sendError(e)
        }
    }

    private mutating func rejectBeforeHello(_ e: ProtocolError) -> FrameAction {
        errorsBeforeHello += 1
        if errorsBeforeHello >= Self.maxErrorsBeforeHello {
            state = .closed
            return .sendErrorAndClose(e, .helloRequired)
        }
        return .sendError(e)
    }

    /// The hub is closing the session (drain, replacement, revocation, idle).
    package mutating func close() { state = .closed }

    /// Called periodically by the sweeper.
    package mutating func tick(now: NIODeadline) -> TickAction {
        switch state {
        case .closed:
            return .none
        case .awaitingHello:
            if now - openedAt >= timing.helloTimeout { state = .closed; return .close(.helloRequired) }
            return .none
        case .active:
            let idle = now - lastActivity
            if idle >= timing.idleTimeout { state = .closed; return .close(.idleTimeout) }
            if idle >= timing.pingAfter && !pingOutstanding { pingOutstanding = true; return .sendPing }
            return .none
        }
    }
}

extension InboundMessage {
    /// The message's own id, echoed as `ref`.
    package var ref: String? {
        switch self {
        case .hello(let h): return h.envelope.id
        case .ping(let p): return p.envelope.id
        case .telemetry(let e, _, _): return e.id
        case .recommendations(let r): return r.envelope.id
        }
    }
}
