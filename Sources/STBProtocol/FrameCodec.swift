/// Turns text frames into validated messages, and messages into frame bytes.
public enum FrameCodec {
    /// Longest accepted `type`, `id`, `model`, `firmware` and `bootId`.
    public static let maxIdentifierLength = 64

    /// Decodes and validates one text frame from a box.
    public static func decode(_ bytes: some Collection<UInt8>) -> Result<InboundMessage, ProtocolError> {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            return .failure(ProtocolError(error.isUTF8 ? .invalidUTF8 : .invalidJSON, error.description))
        }
        guard case .object = value else { return .failure(ProtocolError(.invalidJSON, "a frame must be a JSON object")) }
        let ref: String? = if case .string(let s)? = value["id"] { s } else { nil }
        do {
            let env = try envelope(value)
            switch env.type {
            case "hello":
                let version = try int(value, "protocol", required: false, range: 1...1000) ?? 1
                guard version == STBProtocol.version else {
                    throw ProtocolError(.invalidField, "unsupported protocol version \(version); this hub speaks \(STBProtocol.version)", field: "protocol")
                }
                return .success(
                    .hello(
                        Hello(
                            envelope: env, protocolVersion: Int(version),
                            model: try catalogueName(value, "model"), firmware: try catalogueName(value, "firmware"),
                            bootId: try identifier(value, "bootId"))))
            case "ping":
                return .success(.ping(Ping(envelope: env)))
            case "recommendations":
                let n = try int(value, "n", required: false, range: 1...Int64(RecommendationsRequest.maxN)) ?? 10
                return .success(.recommendations(RecommendationsRequest(envelope: env, n: Int(n))))
            case "metrics", "event", "log", "command_status":
                return .success(.telemetry(env, [try telemetry(value, type: env.type, field: nil)]))
            case "batch":
                guard let raw = value["messages"] else { throw ProtocolError(.missingField, "messages is required", field: "messages") }
                guard case .array(let items) = raw, !items.isEmpty else {
                    throw ProtocolError(.invalidField, "messages must be a non-empty array", field: "messages")
                }
                guard items.count <= maxBatch else {
                    throw ProtocolError(.invalidField, "a batch holds at most \(maxBatch) messages", field: "messages")
                }
                // Each message stands alone: an invalid one is refused with its own error, and
                // the valid rest of the batch is accepted.
                var out: [TelemetryMessage] = []
                var rejected: [ProtocolError] = []
                out.reserveCapacity(items.count)
                for (i, item) in items.enumerated() {
                    let path = "messages[\(i)]"
                    do {
                        guard case .object = item else { throw ProtocolError(.invalidField, "\(path) must be an object", field: path) }
                        guard case .string(let t)? = item["type"] else { throw ProtocolError(.missingField, "\(path).type is required", field: path + ".type") }
                        guard t == "metrics" || t == "event" || t == "log" else {
                            throw ProtocolError(.invalidField, "\(path).type must be metrics, event or log", field: path + ".type")
                        }
                        out.append(try telemetry(item, type: t, field: path))
                    } catch var e as ProtocolError {
                        e.ref = env.id
                        rejected.append(e)
                    }
                }
                if out.isEmpty, let first = rejected.first { throw first }
                return .success(.telemetry(env, out, rejected: rejected))
            default:
                throw ProtocolError(.unknownType, "unknown message type \"\(env.type)\"", field: "type")
            }
        } catch var e as ProtocolError {
            e.ref = e.ref ?? ref
            return .failure(e)
        } catch {
            return .failure(ProtocolError(.invalidJSON, "\(error)", ref: ref))
        }
    }

    /// The most messages in one `batch` (announced as `limits.maxBatch`).
    public static let maxBatch = 100

    static func telemetry(_ v: JSONValue, type: String, field prefix: String?) throws -> TelemetryMessage {
        func name(_ f: String) -> String { prefix.map { "\($0).\(f)" } ?? f }
        func wrap<T>(_ body: () throws -> T) throws -> T {
            do { return try body() } catch var e as ProtocolError {
                if let prefix, let f = e.field, !f.hasPrefix(prefix) { e.field = "\(prefix).\(f)"; e.reason = "\(prefix).\(e.reason)" }
                throw e
            }
        }
        return try wrap {
            let seq = try int(v, "seq", required: true, range: 0...Int64.max)!
            // A command status may leave out ts (the hub times it on receipt).
            let ts = try int(v, "ts", required: type != "command_status", range: 0...253_402_300_799_999) ?? 0
            switch type {
            case "metrics":
                var m = MetricsSample()
                for f in MetricsSample.fields {
                    guard let raw = v[f.name] else { continue }
                    let x: Double
                    switch raw {
                    case .int(let n): x = Double(n)
                    case .double(let d): x = d
                    default: throw ProtocolError(.invalidField, "\(f.name) must be a number", field: f.name)
                    }
                    guard f.range.contains(x) else {
                        throw ProtocolError(.invalidField, "\(f.name) must be from \(f.range.lowerBound) to \(f.range.upperBound)", field: f.name)
                    }
                    m[keyPath: f.path] = x
                }
                return TelemetryMessage(seq: seq, ts: ts, body: .metrics(m))
            case "event":
                let kindText = try identifier(v, "event")
                guard let kind = ViewingEvent.Kind(rawValue: kindText) else {
                    throw ProtocolError(.invalidField, "unknown event \"\(kindText)\"", field: "event")
                }
                let channel = v["channel"] == nil && kind != .tune ? nil : try identifier(v, "channel")
                let code = v["code"] == nil && kind != .playError ? nil : try identifier(v, "code")
                var mode: ViewingEvent.Mode? = nil
                if v["mode"] != nil {
                    let text = try identifier(v, "mode")
                    guard kind == .tune else {
                        throw ProtocolError(.invalidField, "mode is only for tune events", field: "mode")
                    }
                    guard let m = ViewingEvent.Mode(rawValue: text) else {
                        throw ProtocolError(.invalidField, "mode must be live, timeshift or catchup", field: "mode")
                    }
                    mode = m
                }
                return TelemetryMessage(
                    seq: seq, ts: ts, body: .event(ViewingEvent(kind: kind, channel: channel, code: code, mode: mode)))
            case "command_status":
                let ref = try identifier(v, "ref")
                let stateText = try identifier(v, "state")
                guard let state = CommandStatus.State(rawValue: stateText) else {
                    throw ProtocolError(.invalidField, "state must be received, in_progress, succeeded, failed or rejected", field: "state")
                }
                let progress = v["progress"] == nil ? nil : try identifier(v, "progress")
                var reason: String? = nil
                if let raw = v["reason"] {
                    guard case .string(let r) = raw, r.utf8.count <= CommandStatus.maxReason else {
                        throw ProtocolError(.invalidField, "reason must be a string of at most \(CommandStatus.maxReason) bytes", field: "reason")
                    }
                    reason = r
                }
                var result: JSONValue? = nil
                if let raw = v["result"] {
                    guard case .object = raw else { throw ProtocolError(.invalidField, "result must be an object", field: "result") }
                    result = raw
                }
                return TelemetryMessage(
                    seq: seq, ts: ts, body: .commandStatus(CommandStatus(ref: ref, state: state, progress: progress, reason: reason, result: result)))
            default:
                let levelText = try identifier(v, "level")
                guard let level = LogLine.Level(rawValue: levelText) else {
                    throw ProtocolError(.invalidField, "level must be debug, info, warn or error", field: "level")
                }
                let source = try identifier(v, "source")
                guard case .string(let text)? = v["text"] else {
                    throw ProtocolError(v["text"] == nil ? .missingField : .invalidField, "text must be a string", field: "text")
                }
                guard text.utf8.count <= TelemetryLimits.maxLogText else {
                    throw ProtocolError(.invalidField, "text must be at most \(TelemetryLimits.maxLogText) bytes", field: "text")
                }
                let tail = v["tail"] == nil ? nil : try identifier(v, "tail")
                return TelemetryMessage(seq: seq, ts: ts, body: .log(LogLine(level: level, source: source, text: text, tail: tail)))
            }
        }
    }

    static func envelope(_ v: JSONValue) throws -> Envelope {
        let type = try identifier(v, "type")
        var id: String? = nil
        if let raw = v["id"] {
            guard case .string(let s) = raw, !s.isEmpty, s.utf8.count <= maxIdentifierLength else {
                throw ProtocolError(.invalidField, "id must be a string of 1 to \(maxIdentifierLength) bytes", field: "id")
            }
            id = s
        }
        return Envelope(
            type: type, id: id,
            seq: try int(v, "seq", required: false, range: 0...Int64.max),
            ts: try int(v, "ts", required: false, range: 0...253_402_300_799_999))
    }

    static func identifier(_ v: JSONValue, _ field: String) throws -> String {
        guard let raw = v[field] else { throw ProtocolError(.missingField, "\(field) is required", field: field) }
        guard case .string(let s) = raw else { throw ProtocolError(.invalidField, "\(field) must be a string", field: field) }
        guard !s.isEmpty, s.utf8.count <= maxIdentifierLength else {
            throw ProtocolError(.invalidField, "\(field) must be 1 to \(maxIdentifierLength) bytes", field: field)
        }
        guard s.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw ProtocolError(.invalidField, "\(field) must not contain control characters", field: field)
        }
        return s
    }

    /// Characters allowed in a name the operator API also takes (`model`, `firmware`, ids,
    /// tags): letters, digits and `._:-`. A box cannot report a model or firmware the API
    /// would refuse to register or target.
    public static func isCatalogueName(_ s: some StringProtocol, max: Int = maxIdentifierLength) -> Bool {
        !s.isEmpty && s.utf8.count <= max
            && s.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x3A || b == 0x2D
            }
    }

    static func catalogueName(_ v: JSONValue, _ field: String) throws -> String {
        let s = try identifier(v, field)
        guard isCatalogueName(s) else {
            throw ProtocolError(.invalidField, "\(field) must be 1 to \(maxIdentifierLength) characters of letters, digits and ._:-", field: field)
        }
        return s
    }

    static func int(_ v: JSONValue, _ field: String, required: Bool, range: ClosedRange<Int64>) throws -> Int64? {
        guard let raw = v[field] else {
            if required { throw ProtocolError(.missingField, "\(field) is required", field: field) }
            return nil
        }
        guard case .int(let n) = raw else { throw ProtocolError(.invalidField, "\(field) must be an integer", field: field) }
        guard range.contains(n) else { throw ProtocolError(.invalidField, "\(field) is out of range", field: field) }
        return n
    }

    // MARK: - Outbound frames

    /// `welcome`, the hub's answer to `hello`.
    public static func welcome(
        ref: String?, serverTime: Int64, session: String, node: String,
        heartbeatSeconds: Int, limits: Limits
    ) -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.string("type", "welcome")
        w.optionalString("ref", ref)
        w.int("protocol", STBProtocol.version)
        w.int("serverTime", serverTime)
        w.string("session", session)
        w.string("node", node)
        w.int("heartbeatSec", heartbeatSeconds)
        w.key("limits")
        w.beginObject()
        w.int("maxFrameBytes", limits.maxFrameBytes)
        w.int("maxBatch", limits.maxBatch)
        w.int("messagesPerSecond", limits.messagesPerSecond)
        w.endObject()
        w.endObject()
        return w.bytes
    }

    /// `command`: `id` is the command's id (the job id; the same frame goes to every box of
    /// the job, so it is encoded once), `deadline` in ms since the epoch.
    public static func command(id: String, name: String, params: [(String, JSONValue)], deadline: Int64?) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        w.string("type", "command")
        w.string("id", id)
        w.string("name", name)
        w.value("params", .object(params))
        if let deadline { w.int("deadline", deadline) }
        w.endObject()
        return w.bytes
    }

    /// `ack`: every message of the current boot with `seq` ≤ `upTo` is durable.
    public static func ack(upTo: Int64) -> [UInt8] {
        var w = JSONWriter(capacity: 32)
        w.beginObject()
        w.string("type", "ack")
        w.int("upTo", upTo)
        w.endObject()
        return w.bytes
    }

    /// `pong`, the answer to `ping`.
    public static func pong(ref: String?, serverTime: Int64) -> [UInt8] {
        var w = JSONWriter(capacity: 64)
        w.beginObject()
        w.string("type", "pong")
        w.optionalString("ref", ref)
        w.int("serverTime", serverTime)
        w.endObject()
        return w.bytes
    }

    /// `recommendations` (since 1.2), the answer to a box's `recommendations` request: `result` is
    /// the operator API's answer for the box, as it is.
    public static func recommendations(ref: String?, result: JSONValue) -> [UInt8] {
        var w = JSONWriter(capacity: 1024)
        w.beginObject()
        w.string("type", "recommendations")
        w.optionalString("ref", ref)
        w.value("result", result)
        w.endObject()
        return w.bytes
    }

    /// An `error` frame.
    public static func error(_ e: ProtocolError) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        w.string("type", "error")
        w.string("code", e.code.rawValue)
        w.string("reason", e.reason)
        w.optionalString("field", e.field)
        w.optionalString("ref", e.ref)
        w.endObject()
        return w.bytes
    }
}
