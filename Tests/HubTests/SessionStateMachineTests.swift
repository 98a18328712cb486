import ArgusSupport
import NIOCore
import STBProtocol
import Testing

@testable import ArgusStore
@testable import CommandRuntime
@testable import Hub
@testable import HubAPI
@testable import HubGateway

@Suite("Session state machine")
struct SessionStateMachineTests {
    let timing = SessionStateMachine.Timing(helloTimeout: .seconds(10), pingAfter: .seconds(30), idleTimeout: .seconds(75))
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let hello = Hello(envelope: Envelope(type: "hello", id: "h-1", seq: 1), model: "m", firmware: "1", bootId: "b")

    func at(_ seconds: Int64) -> NIODeadline { t0 + .seconds(seconds) }

    @Test func helloMovesToActiveAndIsWelcomed() {
        var m = SessionStateMachine(now: t0, timing: timing)
        #expect(m.received(.success(.hello(hello))) == .welcome(hello))
        #expect(m.state == .active(hello))
    }

    @Test func anyOtherFirstMessageClosesWith4003() {
        var m = SessionStateMachine(now: t0, timing: timing)
        let ping = InboundMessage.ping(Ping(envelope: Envelope(type: "ping", id: "p-1")))
        guard case .sendErrorAndClose(let e, let code) = m.received(.success(ping)) else { Issue.record(); return }
        #expect(e.code == .helloRequired && e.ref == "p-1" && code == .helloRequired)
        #expect(m.state == .closed)
        #expect(m.received(.success(.hello(hello))) == .ignore, "nothing is processed after close")
    }

    @Test func invalidFramesBeforeHelloAreToleratedUpToALimit() {
        var m = SessionStateMachine(now: t0, timing: timing)
        let bad = ProtocolError(.invalidJSON, "x")
        // The documented limit (docs/protocol.md: "Before `hello`, five invalid frames close the
        // connection with 4003"), not the constant under test: four get an error, the fifth closes.
        let documented = 5
        for _ in 1..<documented {
            #expect(m.received(.failure(bad)) == .sendError(bad))
        }
        #expect(m.rejected(bad) == .sendErrorAndClose(bad, .helloRequired))
        #expect(m.state == .closed)
    }

    @Test func activeSessionAnswersPingRejectsSecondHelloAndReportsErrors() {
        var m = SessionStateMachine(now: t0, timing: timing)
        _ = m.received(.success(.hello(hello)))
        #expect(m.received(.success(.ping(Ping(envelope: Envelope(type: "ping", id: "p"))))) == .pong(ref: "p"))
        guard case .sendError(let e) = m.received(.success(.hello(hello))) else { Issue.record(); return }
        #expect(e.code == .duplicateHello)
        let bad = ProtocolError(.unknownType, "x")
        for _ in 0..<20 { #expect(m.received(.failure(bad)) == .sendError(bad)) }
        #expect(m.rejected(bad) == .sendError(bad))
    }

    /// Protocol 1.2: a `recommendations` request is answered for the hello's model (its segment);
    /// before hello it is refused like any other message.
    @Test func recommendationsAreAskedWithTheHellosModelAndOnlyAfterHello() {
        let ask = InboundMessage.recommendations(RecommendationsRequest(envelope: Envelope(type: "recommendations", id: "r-1"), n: 4))
        var early = SessionStateMachine(now: t0, timing: timing)
        guard case .sendErrorAndClose(let e, .helloRequired) = early.received(.success(ask)) else { Issue.record(); return }
        #expect(e.code == .helloRequired && e.ref == "r-1")
        var m = SessionStateMachine(now: t0, timing: timing)
        _ = m.received(.success(.hello(hello)))
        #expect(m.received(.success(ask)) == .recommend(ref: "r-1", n: 4, model: "m"))
    }

    @Test func helloTimeoutClosesWith4003() {
        var m = SessionStateMachine(now: t0, timing: timing)
        #expect(m.tick(now: at(9)) == .none)
        #expect(m.tick(now: at(10)) == .close(.helloRequired))
        #expect(m.tick(now: at(11)) == .none)
    }

    @Test func silenceGetsOnePingThenTheIdleClose() {
        var m = SessionStateMachine(now: t0, timing: timing)
        _ = m.received(.success(.hello(hello)))
        #expect(m.tick(now: at(29)) == .none)
        #expect(m.tick(now: at(30)) == .sendPing)
        #expect(m.tick(now: at(40)) == .none, "only one ping per silence")
        #expect(m.tick(now: at(75)) == .close(.idleTimeout))
        #expect(m.state == .closed)
    }

    @Test func activityResetsTheIdleClock() {
        var m = SessionStateMachine(now: t0, timing: timing)
        _ = m.received(.success(.hello(hello)))
        #expect(m.tick(now: at(30)) == .sendPing)
        m.activity(now: at(31))  // the pong
        #expect(m.tick(now: at(60)) == .none)
        #expect(m.tick(now: at(61)) == .sendPing)
        #expect(m.tick(now: at(106)) == .close(.idleTimeout))
    }

    @Test func closedSessionDoesNothing() {
        var m = SessionStateMachine(now: t0, timing: timing)
        m.close()
        #expect(m.tick(now: at(1000)) == .none)
        #expect(m.rejected(ProtocolError(.invalidJSON, "x")) == .ignore)
    }
}
