import ArgusStore
import ArgusSupport
import Foundation
import Logging
import Metrics
import NIOCore
import NIOWebSocket
import STBProtocol
import Telemetry

/// What every session on a node shares.
package final class GatewayContext: Sendable {
    package let node: String
    package let registry: ConnectionRegistry
    package let presence: PresenceWriter
    package let ingest: TelemetryIngest
    /// Delivers commands; nil in tests that run a gateway alone.
    package let commands: (any SessionCommandHooks)?
    /// Answers boxes' `recommendations` requests; nil when this hub does not serve them (a box
    /// that asks gets `unavailable`).
    package let recommendations: RecommendationRequests?
    package let heartbeatSeconds: Int
    package let limits: Limits
    package let timing: SessionStateMachine.Timing
    package let logger: Logger
    /// Stamps receive times, the `hello` clock offset and `serverTime` (real unless simulating).
    package let clock: HubClock
    package let framesIn = Counter(label: "argus_gateway_frames_in_total")
    package let protocolErrors = Counter(label: "argus_gateway_protocol_errors_total")
    package let errorFramesDropped = Counter(label: "argus_gateway_error_frames_dropped_total")

    package init(
        node: String, registry: ConnectionRegistry, presence: PresenceWriter, ingest: TelemetryIngest, commands: (any SessionCommandHooks)? = nil,
        heartbeatSeconds: Int, limits: Limits, timing: SessionStateMachine.Timing, logger: Logger, clock: HubClock = .real,
        recommendations: RecommendationRequests? = nil
    ) {
        self.clock = clock
        self.recommendations = recommendations
        self.commands = commands
        self.node = node
        self.registry = registry
        self.presence = presence
        self.ingest = ingest
        self.heartbeatSeconds = heartbeatSeconds
        self.limits = limits
        self.timing = timing
        self.logger = logger
    }
}

/// One box's WebSocket session, after an authenticated upgrade.
///
/// A `final class` with no long-lived task, timer or buffer of its own: the per-connection cost is this
/// object and the channel. Liveness is checked by the gateway's sweeper calling ``sweep(now:)``
/// on the channel's event loop, plus one check when the hello deadline passes. All methods run
/// on that event loop. Not `Sendable`: other threads hold a ``SessionHandle``, which hops to
/// the loop.
package final class STBConnectionHandler: ChannelInboundHandler {
    package typealias InboundIn = WebSocketFrame
    package typealias OutboundOut = WebSocketFrame

    package let deviceID: String
    package let session: String
    private let remoteAddress: String?
    private let shared: GatewayContext
    private var machine: SessionStateMachine
    private var context: ChannelHandlerContext?
    private var bucket: TokenBucket
    /// Consecutive frames refused by the rate limit; too many close the session (4029).
    private var strikes = 0
    /// Highest seq known durable, and highest sent in an `ack`.
    private var durableSeq: Int64 = -1
    private var ackedSeq: Int64 = -1
    private var ackScheduled = false
    private var readingPaused = false
    /// Seqs refused for rate and not yet accepted since; acks stay below the lowest, so a
    /// cumulative ack never covers a message the hub did not take. Bounded: at most
    /// `maxStrikes` frames are refused before the session is closed.
    private var refusedSeqs = Set<Int64>()
    /// The highest seq of any frame accepted in this session.
    private var highestAccepted: Int64 = -1
    /// Hub receive time of `hello` − its `ts` (0 when `hello` has no `ts`).
    private var clockOffsetMs: Int64 = 0
    /// What `hello` said, for the offline presence write.
    private var helloInfo: SessionInfo?
    /// A `recommendations` request is being answered (one at a time per session), and the
    /// session's bucket of them (made at the first request).
    private var recommendPending = false
    private var recommendBucket: TokenBucket?
    package static let maxStrikes = 10
    /// The channel's event loop; other threads reach this session only through it.
    package let eventLoop: EventLoop
    /// This session as other threads may hold it. Call on ``eventLoop``.
    package var handle: SessionHandle { SessionHandle(self) }

    package init(deviceID: String, remoteAddress: String?, eventLoop: EventLoop, shared: GatewayContext) {
        self.deviceID = deviceID
        self.session = Secrets.randomHex(bytes: 8)
        self.remoteAddress = remoteAddress
        self.eventLoop = eventLoop
        self.shared = shared
        self.machine = SessionStateMachine(now: .now(), timing: shared.timing)
        self.bucket = TokenBucket(
            rate: Double(shared.ingest.messagesPerSecond), capacity: Double(shared.ingest.burst),
            now: NIODeadline.now().uptimeNanoseconds)
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        shared.registry.opened(handle)
        // The hello deadline is exact, not the sweeper's period: one check when it passes. The
        // task holds the handler weakly and is gone after it runs, so an idle session keeps none.
        context.eventLoop.assumeIsolated().scheduleTask(in: shared.timing.helloTimeout) { [weak self] in
            self?.sweep(now: .now())
        }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        machine.close()
        let handle = handle
        shared.ingest.forget(handle)
        shared.commands?.sessionEnded(handle)
        if shared.registry.closed(handle) {
            shared.presence.submit(deviceID, .offline(session: session, lastSeen: Date(), info: helloInfo))
        }
        self.context = nil
        context.fireChannelInactive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        machine.activity(now: .now())
        switch frame.opcode {
        case .text:
            shared.framesIn.increment()
            guard frame.fin else {
                perform(machine.rejected(ProtocolError(.fragmentedFrame, "send each message as one unfragmented frame")), context)
                return
            }
            guard frame.length <= shared.limits.maxFrameBytes else {
                perform(
                    machine.rejected(ProtocolError(.frameTooLarge, "frame of \(frame.length) bytes exceeds maxFrameBytes \(shared.limits.maxFrameBytes)")),
                    context)
                return
            }
            let data = frame.unmaskedData
            let bytes = Array(data.readableBytesView)
            perform(machine.received(FrameCodec.decode(bytes)), context, frame: bytes)
        case .binary:
            perform(machine.rejected(ProtocolError(.binaryNotSupported, "binary frames are reserved in protocol v1")), context)
        case .continuation:
            perform(machine.rejected(ProtocolError(.fragmentedFrame, "send each message as one unfragmented frame")), context)
        case .ping:
            var payload = frame.unmaskedData
            let buf = context.channel.allocator.buffer(buffer: payload.readSlice(length: min(payload.readableBytes, 125)) ?? ByteBuffer())
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: buf)), promise: nil)
        case .pong:
            break
        case .connectionClose:
            machine.close()
            var payload = frame.unmaskedData
            let code = payload.readInteger(as: UInt16.self) ?? CloseCode.normal.rawValue
            var buf = context.channel.allocator.buffer(capacity: 2)
            buf.writeInteger(code)
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: buf)))
                .whenComplete { _ in loopBound.value.close(promise: nil) }
        default:
            perform(machine.rejected(ProtocolError(.invalidJSON, "unsupported frame opcode")), context)
        }
    }

    private func perform(_ action: SessionStateMachine.FrameAction, _ context: ChannelHandlerContext, frame: [UInt8] = []) {
        switch action {
        case .ingest(let bootId, let ref, let messages, let rejected):
            for e in rejected { sendError(e, context) }
            ingest(bootId: bootId, ref: ref, messages, frame: frame, context)
        case .ignore:
            break
        case .welcome(let hello):
            // The box's clock against the hub's, for ratings: events are placed with it.
            let now = shared.clock.nowMillis()
            clockOffsetMs = hello.envelope.ts.map { now &- $0 } ?? 0
            if let old = shared.registry.activate(handle, model: hello.model, firmware: hello.firmware) {
                old.close(.replaced)
                shared.logger.info("session replaced", metadata: [LogKey.stbID: .string(deviceID), LogKey.stbSession: .string(old.id)])
            }
            let info = SessionInfo(connectedAt: Date(), remoteAddress: remoteAddress, model: hello.model, firmware: hello.firmware, bootId: hello.bootId)
            helloInfo = info
            shared.presence.submit(
                deviceID,
                .online(
                    session: session, connectedAt: info.connectedAt, remoteAddress: remoteAddress,
                    model: hello.model, firmware: hello.firmware, bootId: hello.bootId))
            send(
                FrameCodec.welcome(
                    ref: hello.envelope.id, serverTime: shared.clock.nowMillis(), session: session, node: shared.node,
                    heartbeatSeconds: shared.heartbeatSeconds, limits: shared.limits), context)
            shared.commands?.sessionStarted(handle)
        case .pong(let ref):
            send(FrameCodec.pong(ref: ref, serverTime: shared.clock.nowMillis()), context)
        case .recommend(let ref, let n, let model):
            recommend(ref: ref, n: n, model: model, context)
        case .sendError(let e):
            sendError(e, context)
        case .sendErrorAndClose(let e, let code):
            sendError(e, context)
            close(code)
        }
    }

    /// Spools an accepted telemetry frame; the box gets its `ack` once the spool has synced it.
    private func ingest(bootId: String, ref: String?, _ messages: [TelemetryMessage], frame: [UInt8], _ context: ChannelHandlerContext) {
        let ingest = shared.ingest
        guard bucket.take(messages.count, now: NIODeadline.now().uptimeNanoseconds) else {
            ingest.rateLimited.increment(by: Int64(messages.count))
            strikes += 1
            for m in messages { refusedSeqs.insert(m.seq) }
            sendError(ProtocolError(.rateLimited, "over \(ingest.messagesPerSecond) messages per second; resend later", ref: ref), context)
            if strikes >= Self.maxStrikes { close(.rateLimited) }
            return
        }
        strikes = 0
        for m in messages {
            refusedSeqs.remove(m.seq)
            if case .commandStatus(let c) = m.body { shared.commands?.report(deviceID, c) }
        }
        highestAccepted = messages.reduce(highestAccepted) { max($0, $1.seq) }
        // Completions arrive in append order, so when this frame is durable so is every frame
        // accepted before it: the ack may cover up to `highestAccepted`, but not a refused seq.
        let maxSeq = refusedSeqs.min().map { min(highestAccepted, $0 - 1) } ?? highestAccepted
        let count = Int64(messages.count)
        let record = SpoolRecord(deviceID: deviceID, bootId: bootId, receivedAt: shared.clock.nowMillis(), clockOffsetMs: clockOffsetMs, frame: frame)
        let loop = eventLoop
        let this = NIOLoopBound(self, eventLoop: loop)
        let result = ingest.spool.append(record) { ok in
            loop.execute {
                if ok { ingest.countAcked(Int(count)); this.value.durable(upTo: maxSeq) } else { this.value.close(.internalError) }
            }
        }
        if result != .full { ingest.live.publishTelemetry(device: deviceID, bootId: bootId, frame: frame) }
        switch result {
        case .queued:
            ingest.countAccepted(Int(count))
        case .queuedSlowDown:
            ingest.countAccepted(Int(count))
            pauseReading(context)
        case .full:
            ingest.spoolFull.increment()
            shared.logger.warning(
                "telemetry spool full; not acknowledging, closing session",
                metadata: [
                    LogKey.stbID: .string(deviceID), LogKey.spoolBytes: .stringConvertible(ingest.spool.bytesOnDisk),
                ])
            close(.tryAgainLater)
        }
    }

    /// Answers a `recommendations` request off the event loop, within the session's and the
    /// node's bounds (``RecommendationRequests``); every refusal and failure is an error frame
    /// with the request's `ref`.
    private func recommend(ref: String?, n: Int, model: String, _ context: ChannelHandlerContext) {
        guard let requests = shared.recommendations else {
            sendError(ProtocolError(.unavailable, "this hub does not serve recommendations", ref: ref), context)
            return
        }
        guard !recommendPending else {
            requests.refusedRate.increment()
            sendError(ProtocolError(.rateLimited, "one recommendations request at a time: wait for the answer", ref: ref), context)
            return
        }
        let now = NIODeadline.now().uptimeNanoseconds
        var bucket = recommendBucket ?? requests.bucket(now: now)
        let allowed = bucket.take(1, now: now)
        recommendBucket = bucket
        guard allowed else {
            requests.refusedRate.increment()
            sendError(
                ProtocolError(
                    .rateLimited, "at most \(requests.burst) recommendations requests at once, then one every \(Int((1 / requests.perSecond).rounded())) s",
                    ref: ref),
                context)
            return
        }
        guard requests.enter() else {
            requests.refusedBusy.increment()
            sendError(ProtocolError(.unavailable, "the hub is busy answering other boxes; retry later", ref: ref), context)
            return
        }
        recommendPending = true
        let loop = eventLoop
        let this = NIOLoopBound(self, eventLoop: loop)
        let device = deviceID
        let logger = shared.logger
        Task {
            let result: Result<JSONValue, any Error>
            do { result = .success(try await requests.source.recommendations(device: device, model: model, n: n)) } catch { result = .failure(error) }
            requests.leave()
            loop.execute {
                let handler = this.value
                handler.recommendPending = false
                guard let context = handler.context else { return }
                switch result {
                case .success(let answer):
                    requests.answered.increment()
                    handler.send(FrameCodec.recommendations(ref: ref, result: answer), context)
                case .failure(let error):
                    requests.failed.increment()
                    logger.warning("recommendations for a box failed", metadata: [LogKey.stbID: .string(device), LogKey.error: .string("\(error)")])
                    handler.sendError(ProtocolError(.unavailable, "recommendations are unavailable now; retry later", ref: ref), context)
                }
            }
        }
    }

    /// Coalesces acknowledgements: one `ack` per event-loop turn, however many records synced.
    private func durable(upTo seq: Int64) {
        durableSeq = max(durableSeq, seq)
        guard !ackScheduled else { return }
        ackScheduled = true
        eventLoop.assumeIsolated().execute { [self] in
            ackScheduled = false
            guard durableSeq > ackedSeq, let context else { return }
            ackedSeq = durableSeq
            send(FrameCodec.ack(upTo: ackedSeq), context)
        }
    }

    private func pauseReading(_ context: ChannelHandlerContext) {
        guard !readingPaused else { return }
        readingPaused = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        shared.ingest.pause(handle)
    }

    /// Called on ``eventLoop`` when the spool has drained.
    package func resumeReading() {
        guard readingPaused, let context else { return }
        readingPaused = false
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
    }

    /// Sends a `command` frame (shared by every box of the job). Must run on ``eventLoop``.
    package func sendCommand(_ frame: ByteBuffer) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: frame)), promise: nil)
    }

    private func sendError(_ e: ProtocolError, _ context: ChannelHandlerContext) {
        shared.protocolErrors.increment()
        // Error frames are advice. A box that does not read its socket does not get them
        // queued without bound: they are dropped while the channel is not writable.
        guard context.channel.isWritable else { shared.errorFramesDropped.increment(); return }
        send(FrameCodec.error(e), context)
    }

    private func send(_ bytes: [UInt8], _ context: ChannelHandlerContext) {
        let buf = context.channel.allocator.buffer(bytes: bytes)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: buf)), promise: nil)
    }

    /// Ends the session with a close frame. Must run on ``eventLoop``.
    package func close(_ code: CloseCode) {
        eventLoop.preconditionInEventLoop()
        machine.close()
        guard let context else { return }
        var buf = context.channel.allocator.buffer(capacity: 2 + code.reason.utf8.count)
        buf.writeInteger(code.rawValue)
        buf.writeString(code.reason)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: buf)))
            .whenComplete { _ in channel.close(promise: nil) }
    }

    /// Liveness check by the sweeper. Must run on ``eventLoop``.
    package func sweep(now: NIODeadline) {
        guard let context else { return }
        switch machine.tick(now: now) {
        case .none:
            break
        case .sendPing:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: context.channel.allocator.buffer(capacity: 0))), promise: nil)
        case .close(let code):
            shared.logger.debug("closing session", metadata: [LogKey.stbID: .string(deviceID), LogKey.closeCode: .stringConvertible(code.rawValue)])
            machine.close()
            close(code)
        }
    }

    package func errorCaught(context: ChannelHandlerContext, error: Error) {
        shared.logger.debug("connection error", metadata: [LogKey.stbID: .string(deviceID), LogKey.error: .string("\(error)")])
        context.close(promise: nil)
    }
}

/// What the command runtime needs to hear from sessions. Called on the session's event loop;
/// implementations must not block it.
package protocol SessionCommandHooks: Sendable {
    /// A box said hello: its open executions are looked up and sent.
    func sessionStarted(_ h: SessionHandle)
    /// A box's session ended.
    func sessionEnded(_ h: SessionHandle)
    /// A `command_status` the box sent (already accepted for the spool).
    func report(_ device: String, _ status: CommandStatus)
}
