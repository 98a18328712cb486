import ArgusStore
import ArgusSupport
import Foundation
import NIOCore
import NIOHTTP1
import STBProtocol

/// Per-connection state shared by the upgrader's callbacks and the fallback responder.
// @unchecked: used only on its connection's event loop (the upgrader's callbacks and the
// responder both run there); Sendable only to cross NIO's @Sendable callback signatures.
package final class HandshakeState: @unchecked Sendable {
    package var rejection: HandshakeRejection?
    /// The authenticated box, once shouldUpgrade accepted it.
    package var deviceID: String?
    /// A credential lookup is in flight: the handshake timer leaves the socket alone, since
    /// the lookup's own deadline answers it.
    package var verifying = false
    /// Set when the socket was over capacity at accept time.
    package let overCapacity: Bool
    package init(overCapacity: Bool) { self.overCapacity = overCapacity }
}

/// Answers every HTTP request that did not become a WebSocket: 401, 404, 426 or 503 with
/// `Retry-After`, always with `Connection: close`. It also closes sockets that send no
/// complete request within the handshake timeout. Removed from the pipeline on upgrade.
package final class HandshakeResponder: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = HTTPServerResponsePart

    package static let name = "argus.handshake"
    private let state: HandshakeState
    private let retryAfterSeconds: Int
    private let timeout: TimeAmount
    private var head: HTTPRequestHead?
    private var timer: Scheduled<Void>?

    package init(state: HandshakeState, retryAfterSeconds: Int, timeout: TimeAmount) {
        self.state = state
        self.retryAfterSeconds = retryAfterSeconds
        self.timeout = timeout
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let state = self.state
        // Closes a socket that sent no complete request in time (slowloris); a request whose
        // credentials are being checked is answered by the check's deadline instead.
        timer = context.eventLoop.scheduleTask(in: timeout) { if !state.verifying { channel.close(promise: nil) } }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end: respond(context)
        }
    }

    private func respond(_ context: ChannelHandlerContext) {
        let path = head.map { String($0.uri.split(separator: "?", maxSplits: 1).first ?? "") } ?? ""
        var status: HTTPResponseStatus
        var message: String
        var headers = HTTPHeaders([("Content-Type", "application/json"), ("Connection", "close")])
        if let r = state.rejection ?? (state.overCapacity ? .overCapacity : nil) {
            status = r.status
            message = r.message
            if let after = r.retryAfter(base: retryAfterSeconds) { headers.add(name: "Retry-After", value: String(after)) }
            if r == .unauthorized { headers.add(name: "WWW-Authenticate", value: "Basic realm=\"argus-stb\"") }
        } else if path == "/v1/stb" {
            status = .upgradeRequired
            message = "this endpoint speaks WebSocket only"
            headers.add(name: "Upgrade", value: "websocket")
        } else {
            status = .notFound
            message = HandshakeRejection.notFound.message
        }
        var body = context.channel.allocator.buffer(capacity: 64)
        var json = [UInt8]()
        json.append(contentsOf: Array("{\"error\":".utf8))
        JSONWriter.appendString(message, to: &json)
        json.append(UInt8(ascii: "}"))
        body.writeBytes(json)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
