import ArgusSupport
import Foundation
import Logging
import MongoStore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOWebSocket
import STBProtocol
import Telemetry
import Testing

@testable import ArgusStore
@testable import CommandRuntime
@testable import Hub
@testable import HubAPI
@testable import HubGateway

/// The gateway's channel handlers on EmbeddedChannel: no sockets, no store calls.
@Suite("Gateway handlers")
struct GatewayHandlerTests {
    static func context() throws -> GatewayContext {
        // The store is never called here: PresenceWriter only queues until its service runs.
        let store = try MongoStore(uri: "mongodb://127.0.0.1:1/", logger: Logger(label: "t"))
        // The spool is never started here: appends only queue. Ingest is covered end to end.
        let spool = try Spool(configuration: .init(directory: NSTemporaryDirectory() + "argus-gw-" + UUID().uuidString))
        return GatewayContext(
            node: "test-node", registry: ConnectionRegistry(),
            presence: PresenceWriter(store: store, node: "test-node", logger: Logger(label: "t")),
            ingest: TelemetryIngest(spool: spool, messagesPerSecond: 5, burst: 10),
            heartbeatSeconds: 30, limits: Limits(maxFrameBytes: 1024),
            timing: .init(helloTimeout: .seconds(10), pingAfter: .seconds(30), idleTimeout: .seconds(75)),
            logger: Logger(label: "t"))
    }

    func text(_ s: String, _ ch: EmbeddedChannel) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .text, data: ch.allocator.buffer(string: s))
    }

    func readJSON(_ ch: EmbeddedChannel) throws -> JSONValue {
        let f = try #require(try ch.readOutbound(as: WebSocketFrame.self))
        #expect(f.opcode == .text)
        return try JSONParser.parse(f.data.readableBytesView)
    }

    @Test func helloIsWelcomedRegisteredAndQueuedAsOnline() throws {
        let shared = try Self.context()
        let ch = EmbeddedChannel()
        let h = STBConnectionHandler(deviceID: "box-1", remoteAddress: "127.0.0.9", eventLoop: ch.eventLoop, shared: shared)
        try ch.pipeline.syncOperations.addHandler(h)
        #expect(shared.registry.sessionCount == 1 && shared.registry.activeCount == 0)
        try ch.writeInbound(text(#"{"type":"hello","id":"h-1","model":"m","firmware":"9","bootId":"b"}"#, ch))
        let w = try readJSON(ch)
        #expect(w["type"] == .string("welcome") && w["ref"] == .string("h-1") && w["node"] == .string("test-node"))
        #expect(w["session"] == .string(h.session))
        #expect(shared.registry.session(for: "box-1")?.refers(to: h) == true)
        #expect(shared.presence.pendingCount == 1)
        try ch.writeInbound(text(#"{"type":"ping","id":"p"}"#, ch))
        #expect(try readJSON(ch)["type"] == .string("pong"))
        _ = try ch.finish()
        #expect(shared.registry.sessionCount == 0 && shared.registry.activeCount == 0)
    }

    @Test func badFramesGetErrorFramesAndTheChannelStaysOpen() throws {
        let shared = try Self.context()
        let ch = EmbeddedChannel()
        try ch.pipeline.syncOperations.addHandler(STBConnectionHandler(deviceID: "b", remoteAddress: nil, eventLoop: ch.eventLoop, shared: shared))
        try ch.writeInbound(text(#"{"type":"hello","id":"h","model":"m","firmware":"9","bootId":"b"}"#, ch))
        _ = try readJSON(ch)
        try ch.writeInbound(WebSocketFrame(fin: true, opcode: .binary, data: ch.allocator.buffer(bytes: [1, 2])))
        #expect(try readJSON(ch)["code"] == .string("binary_not_supported"))
        try ch.writeInbound(text(String(repeating: "x", count: 2000), ch))
        #expect(try readJSON(ch)["code"] == .string("frame_too_large"))
        try ch.writeInbound(WebSocketFrame(fin: false, opcode: .text, data: ch.allocator.buffer(string: "{")))
        #expect(try readJSON(ch)["code"] == .string("fragmented_frame"))
        try ch.writeInbound(text("[]", ch))
        #expect(try readJSON(ch)["code"] == .string("invalid_json"))
        try ch.writeInbound(
            WebSocketFrame(fin: true, opcode: .text, data: ch.allocator.buffer(bytes: Array(#"{"type":"log","text":""#.utf8) + [0xC3, 0x28, 0x22, 0x7D])))
        #expect(try readJSON(ch)["code"] == .string("invalid_utf8"))
        // No close frame was sent, and the session still answers.
        try ch.writeInbound(text(#"{"type":"ping","id":"after"}"#, ch))
        #expect(try readJSON(ch)["ref"] == .string("after"))
        #expect(try ch.readOutbound(as: WebSocketFrame.self) == nil)
        _ = try ch.finish()
    }

    @Test func telemetryBeyondTheRateLimitIsRefusedAndPersistentAbuseCloses4029() throws {
        let shared = try Self.context()
        let ch = EmbeddedChannel()
        try ch.pipeline.syncOperations.addHandler(STBConnectionHandler(deviceID: "r", remoteAddress: nil, eventLoop: ch.eventLoop, shared: shared))
        try ch.writeInbound(text(#"{"type":"hello","id":"h","model":"m","firmware":"9","bootId":"b"}"#, ch))
        _ = try readJSON(ch)
        // The burst is 10 messages: ten single messages pass, the eleventh is refused.
        for i in 0..<10 { try ch.writeInbound(text(#"{"type":"log","seq":\#(i),"ts":1,"level":"info","source":"s","text":"x"}"#, ch)) }
        #expect(try ch.readOutbound(as: WebSocketFrame.self) == nil, "accepted frames wait for the spool before any ack")
        try ch.writeInbound(text(#"{"type":"log","seq":10,"ts":1,"level":"info","source":"s","text":"x"}"#, ch))
        #expect(try readJSON(ch)["code"] == .string("rate_limited"))
        for i in 11..<(10 + STBConnectionHandler.maxStrikes) {
            try ch.writeInbound(text(#"{"type":"log","seq":\#(i),"ts":1,"level":"info","source":"s","text":"x"}"#, ch))
            _ = try readJSON(ch)
        }
        ch.embeddedEventLoop.run()
        let close = try #require(try ch.readOutbound(as: WebSocketFrame.self))
        var data = close.data
        #expect(close.opcode == .connectionClose && data.readInteger(as: UInt16.self) == CloseCode.rateLimited.rawValue)
        _ = try? ch.finish()
    }

    @Test func aSecondSessionReplacesTheFirstWith4000() throws {
        let shared = try Self.context()
        let a = EmbeddedChannel(), b = EmbeddedChannel()
        let ha = STBConnectionHandler(deviceID: "dup", remoteAddress: nil, eventLoop: a.eventLoop, shared: shared)
        let hb = STBConnectionHandler(deviceID: "dup", remoteAddress: nil, eventLoop: b.eventLoop, shared: shared)
        try a.pipeline.syncOperations.addHandler(ha)
        try b.pipeline.syncOperations.addHandler(hb)
        let hello = #"{"type":"hello","id":"h","model":"m","firmware":"9","bootId":"b"}"#
        try a.writeInbound(text(hello, a)); _ = try readJSON(a)
        try b.writeInbound(text(hello, b)); _ = try readJSON(b)
        a.embeddedEventLoop.run()
        let close = try #require(try a.readOutbound(as: WebSocketFrame.self))
        #expect(close.opcode == .connectionClose)
        var data = close.data
        #expect(data.readInteger(as: UInt16.self) == CloseCode.replaced.rawValue)
        #expect(shared.registry.session(for: "dup")?.refers(to: hb) == true)
        _ = try? a.finish()
        #expect(shared.registry.session(for: "dup")?.refers(to: hb) == true, "the replaced session's close leaves the new one in place")
        _ = try b.finish()
    }

    func respond(_ state: HandshakeState, uri: String = "/v1/stb") throws -> (HTTPResponseHead, String) {
        let ch = EmbeddedChannel()
        try ch.pipeline.syncOperations.addHandler(HandshakeResponder(state: state, retryAfterSeconds: 7, timeout: .seconds(10)))
        try ch.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)))
        try ch.writeInbound(HTTPServerRequestPart.end(nil))
        guard case .head(let head)? = try ch.readOutbound(as: HTTPServerResponsePart.self),
            case .body(.byteBuffer(let body))? = try ch.readOutbound(as: HTTPServerResponsePart.self)
        else {
            throw CancellationError()
        }
        _ = try? ch.finish()
        return (head, String(buffer: body))
    }

    @Test func refusalsAreAnsweredBeforeAnyUpgrade() throws {
        let over = HandshakeState(overCapacity: true)
        let (h503, b503) = try respond(over)
        // Retry-After is jittered around the base (7 here): from half of it to one and a half times it.
        #expect(h503.status == .serviceUnavailable)
        #expect(h503.headers["Retry-After"].first.flatMap { Int($0) }.map { (3...10).contains($0) } == true)
        #expect(b503.contains("capacity"))
        let unauth = HandshakeState(overCapacity: false)
        unauth.rejection = .unauthorized
        let (h401, _) = try respond(unauth)
        #expect(h401.status == .unauthorized && h401.headers["Connection"] == ["close"])
        let plain = try respond(HandshakeState(overCapacity: false))
        #expect(plain.0.status == .upgradeRequired)
        let other = try respond(HandshakeState(overCapacity: false), uri: "/x")
        #expect(other.0.status == .notFound)
    }

    @Test func retryAfterIsJitteredWithinItsRangeForEachReason() {
        var busy = Set<Int>(), other = Set<Int>()
        for _ in 0..<500 {
            busy.insert(HandshakeRejection.verifyBusy.retryAfter(base: 30) ?? -1)
            other.insert(HandshakeRejection.storeUnavailable.retryAfter(base: 30) ?? -1)
        }
        #expect(busy.min() == 1 && busy.max() == 10, "a busy verifier frees up within seconds: 1...base/3")
        #expect(other.min()! >= 15 && other.max()! <= 45 && other.count > 10)
        #expect(HandshakeRejection.unauthorized.retryAfter(base: 30) == nil)
        #expect(HandshakeRejection.notFound.retryAfter(base: 30) == nil)
    }
}

@Suite("Credential cache")
struct CredentialCacheTests {
    @Test func freshEntriesAnswerStaleOnesDoNot() {
        let c = CredentialCache(ttl: .seconds(10), fallbackTTL: .seconds(100), limit: 10)
        let t0 = ContinuousClock.now
        c.remember("a", secret: "s1", now: t0)
        #expect(c.check("a", secret: "s1", maxAge: c.ttl, now: t0 + .seconds(9)) == .match)
        #expect(c.check("a", secret: "nope", maxAge: c.ttl, now: t0 + .seconds(9)) == .mismatch)
        #expect(c.check("a", secret: "s1", maxAge: c.ttl, now: t0 + .seconds(11)) == .unknown)
        #expect(c.check("a", secret: "s1", maxAge: c.fallbackTTL, now: t0 + .seconds(11)) == .match)
        c.forget("a")
        #expect(c.check("a", secret: "s1", maxAge: c.fallbackTTL, now: t0) == .unknown)
    }

    @Test func boundedOldestEvictedFirst() {
        let c = CredentialCache(limit: 3)
        for i in 0..<5 { c.remember("b\(i)", secret: "s") }
        #expect(c.count == 3)
        #expect(c.check("b0", secret: "s", maxAge: c.ttl) == .unknown)
        #expect(c.check("b4", secret: "s", maxAge: c.ttl) == .match)
        c.remember("b2", secret: "s2")  // replaced: no second slot
        #expect(c.count == 3)
    }
}

@Suite("Failed handshake limiter")
struct FailedHandshakeLimiterTests {
    @Test func anAddressIsLimitedAfterItsBurstAndRecoversAtTheRate() {
        let l = FailedHandshakeLimiter(burst: 3, perSecond: 1, maxAddresses: 100)
        let t0 = ContinuousClock.now
        for _ in 0..<3 {
            #expect(!l.isLimited("10.0.0.1", now: t0))
            l.recordFailure("10.0.0.1", now: t0)
        }
        #expect(l.isLimited("10.0.0.1", now: t0))
        #expect(!l.isLimited("10.0.0.2", now: t0), "other addresses are not affected")
        #expect(!l.isLimited("10.0.0.1", now: t0 + .milliseconds(1100)), "one token back after a second")
    }

    @Test func boundedInAddresses() {
        let l = FailedHandshakeLimiter(burst: 2, perSecond: 1, maxAddresses: 10)
        let t0 = ContinuousClock.now
        for i in 0..<50 { l.recordFailure("10.0.1.\(i)", now: t0 + .milliseconds(i)) }
        #expect(l.addresses == 10)
    }
}
