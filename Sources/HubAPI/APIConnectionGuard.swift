import ArgusStore
import ArgusSupport
import CommandRuntime
import HTTPTypes
import HubGateway
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes
import STBProtocol

/// Limits on the operator API's sockets, so that no caller can hold descriptors or memory
/// for free:
/// - a request's headers must be complete within `headerTimeout` of the connection opening,
///   or of its first byte after an earlier response (slowloris); otherwise 408 and close;
/// - a keep-alive connection with no request for `idleTimeout` is closed;
/// - headers over `maxHeaderBytes` get 431 and close;
/// - at most ``ConnectionCapacity/cap`` sockets at once, counted in the same descriptor
///   budget as the gateway's; a socket past it gets 503 with `Retry-After` and is closed.
package struct APILimits: Sendable {
    package var headerTimeout: TimeAmount = .seconds(10)
    package var idleTimeout: TimeAmount = .seconds(60)

    package init(headerTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .seconds(60)) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }
    package var maxHeaderBytes = 32 * 1024
    package var maxConnections = 256
    /// Sockets past the cap that may be open at once only to be told 503.
    package var rejectBudget = 32
}

/// Wraps Hummingbird's HTTP/1 + WebSocket child channel with an ``APIConnectionHandler`` at
/// the socket end of the pipeline, in front of the HTTP decoder.
package struct GuardedChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    package typealias Value = Inner.Value
    package let inner: Inner
    package let limits: APILimits
    package let capacity: ConnectionCapacity
    package let stats: APIConnectionStats

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(
                APIConnectionHandler(limits: limits, capacity: capacity, stats: stats), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger)
    }

    package func handle(value: Value, logger: Logger) async { await inner.handle(value: value, logger: logger) }
}

extension HTTPServerBuilder {
    /// HTTP/1 with the live-view WebSocket upgrade, behind ``APILimits``.
    package static func guardedHTTP1WebSocket(
        limits: APILimits, capacity: ConnectionCapacity, stats: APIConnectionStats,
        shouldUpgrade:
            @escaping @Sendable (HTTPRequest, any Channel, Logger) async throws -> ShouldUpgradeResult<
                WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
            >
    ) -> HTTPServerBuilder {
        .init { responder in
            let config = HTTP1WebSocketUpgradeChannel.Configuration(
                http1: .init(additionalChannelHandlers: [APIRequestBoundaryHandler()], idleTimeout: limits.idleTimeout))
            return GuardedChildChannel(
                inner: HTTP1WebSocketUpgradeChannel(responder: responder, configuration: config, shouldUpgrade: shouldUpgrade),
                limits: limits, capacity: capacity, stats: stats)
        }
    }
}

/// Counters and the bounded-rate log for refused API sockets.
package final class APIConnectionStats: Sendable {
    package let logger: Logger
    package let log = RateLimitedLog()
    package init(logger: Logger) { self.logger = logger }

    package func closed(_ reason: String) {
        Counter(label: "argus_api_connections_closed_total", dimensions: [("reason", reason)]).increment()
        log.event { folded in
            logger.notice("API connection closed by a limit", metadata: [LogKey.reason: .string(reason), LogKey.closesFolded: .stringConvertible(folded)])
        }
    }
}

/// The socket-end handler of an API connection: counts it against the cap, enforces the
/// header deadline, the header size and the idle timeout. It reads request heads only as far
/// as finding their end (a blank line); after an upgrade to WebSocket it only passes bytes on.
package final class APIConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = IOData
    package typealias OutboundOut = IOData

    package enum State {
        /// Reading a request head: bytes so far, and newlines in a row (CRs skipped).
        case head(bytes: Int, newlines: Int)
        /// A request is being read or answered.
        case request
        /// Between requests on a keep-alive connection.
        case idle
        case upgraded
        case closing
    }

    package let limits: APILimits
    package let capacity: ConnectionCapacity
    package let stats: APIConnectionStats
    private var state = State.head(bytes: 0, newlines: 0)
    private var timer: Scheduled<Void>?
    /// Request heads the HTTP decoder produced minus responses finished (see
    /// ``APIRequestBoundaryHandler``).
    private var inFlight = 0
    private var counted = false

    package init(limits: APILimits, capacity: ConnectionCapacity, stats: APIConnectionStats) {
        self.limits = limits
        self.capacity = capacity
        self.stats = stats
    }

    package func channelActive(context: ChannelHandlerContext) {
        counted = true
        switch capacity.acquire() {
        case .admit:
            arm(context, limits.headerTimeout)
            context.fireChannelActive()
        case .overCapacity:
            context.fireChannelActive()
            refuse(
                context, "503 Service Unavailable", "the operator API is at its connection limit (\(capacity.cap)); retry shortly",
                extra: "Retry-After: \(Int.random(in: 2...6))\r\n", reason: "capacity")
        case .drop:
            stats.closed("capacity_drop")
            state = .closing
            context.close(promise: nil)
        }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if counted { capacity.release(); counted = false }
        context.fireChannelInactive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .closing:
            return
        case .upgraded, .request:
            context.fireChannelRead(data)
        case .idle:
            state = .head(bytes: 0, newlines: 0)
            arm(context, limits.headerTimeout)
            scan(context, data)
        case .head:
            scan(context, data)
        }
    }

    private func scan(_ context: ChannelHandlerContext, _ data: NIOAny) {
        guard case .head(var bytes, var newlines) = state else { return context.fireChannelRead(data) }
        let buffer = unwrapInboundIn(data)
        var ended = false
        for b in buffer.readableBytesView {
            bytes += 1
            if b == UInt8(ascii: "\n") {
                newlines += 1
                if newlines == 2 { ended = true; break }
            } else if b != UInt8(ascii: "\r") {
                newlines = 0
            }
            if bytes > limits.maxHeaderBytes { break }
        }
        if ended {
            state = .request
            cancelTimer()
        } else if bytes > limits.maxHeaderBytes {
            return refuse(
                context, "431 Request Header Fields Too Large",
                "the request's headers are larger than \(limits.maxHeaderBytes) bytes", reason: "header_too_large")
        } else {
            state = .head(bytes: bytes, newlines: newlines)
        }
        context.fireChannelRead(data)
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // A 101 answer to the first request: from here on the socket is a live-view WebSocket.
        if case .request = state, inFlight == 0, case .byteBuffer(let b) = unwrapOutboundIn(data),
            b.readableBytesView.starts(with: "HTTP/1.1 101".utf8)
        {
            state = .upgraded
            cancelTimer()
        }
        context.write(data, promise: promise)
    }

    /// The HTTP decoder produced a request head.
    package func requestStarted(context: ChannelHandlerContext) {
        inFlight += 1
        if case .upgraded = state { return }
        state = .request
        cancelTimer()
    }

    /// A response was written to its end.
    package func responseFinished(context: ChannelHandlerContext) {
        inFlight = max(0, inFlight - 1)
        guard inFlight == 0, case .request = state else { return }
        state = .idle
        arm(context, limits.idleTimeout)
    }

    private func arm(_ context: ChannelHandlerContext, _ after: TimeAmount) {
        timer?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: after) {
            let (handler, context) = loopBound.value
            handler.expired(context)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    private func expired(_ context: ChannelHandlerContext) {
        timer = nil
        switch state {
        case .head:
            refuse(
                context, "408 Request Timeout",
                "the request's headers did not arrive within \(limits.headerTimeout.nanoseconds / 1_000_000_000) s", reason: "header_timeout")
        case .idle:
            stats.closed("idle_timeout")
            state = .closing
            context.close(promise: nil)
        case .request, .upgraded, .closing:
            break
        }
    }

    /// Answers with `status` and a JSON error, straight to the socket (no request is being
    /// answered when this is called), and closes.
    private func refuse(_ context: ChannelHandlerContext, _ status: String, _ message: String, extra: String = "", reason: String) {
        stats.closed(reason)
        state = .closing
        cancelTimer()
        var json = JSONWriter(capacity: message.utf8.count + 32)
        json.beginObject()
        json.key("error")
        json.beginObject()
        json.string("message", message)
        json.endObject()
        json.endObject()
        let body = json.bytes
        let head =
            "HTTP/1.1 \(status)\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
            + extra + "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        // The write completes on the channel's event loop, where the context may be used.
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer))).whenComplete { _ in loopBound.value.close(promise: nil) }
    }
}

/// Sits after the HTTP decoder and tells the connection's ``APIConnectionHandler`` where
/// requests begin (a decoded head) and end (a written response end).
package final class APIRequestBoundaryHandler: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPRequestPart
    package typealias InboundOut = HTTPRequestPart
    package typealias OutboundIn = HTTPResponsePart
    package typealias OutboundOut = HTTPResponsePart

    private var front: APIConnectionHandler?
    private var frontContext: ChannelHandlerContext?

    package func handlerAdded(context: ChannelHandlerContext) {
        if let h = try? context.pipeline.syncOperations.handler(type: APIConnectionHandler.self),
            let c = try? context.pipeline.syncOperations.context(handlerType: APIConnectionHandler.self)
        {
            front = h
            frontContext = c
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        front = nil
        frontContext = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data), let front, let frontContext { front.requestStarted(context: frontContext) }
        context.fireChannelRead(data)
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        if isEnd, let front, let frontContext { front.responseFinished(context: frontContext) }
    }
}
