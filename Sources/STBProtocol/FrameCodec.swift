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
                return .success(.hello(Hello(
                    envelope: env, protocolVersion: Int(version),
                    model: try identifier(value, "model"), firmware: try identifier(value, "firmware"),
                    bootId: try identifier(value, "bootId"))))
            case "ping":
                return .success(.ping(Ping(envelope: env)))
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

    static func envelope(_ v: JSONValue) throws -> Envelope {
        let type = try identifier(v, "type")
        var id: String? = nil
        if let raw = v["id"] {
            guard case .string(let s) = raw, !s.isEmpty, s.utf8.count <= maxIdentifierLength else {
                throw ProtocolError(.invalidField, "id must be a string of 1 to \(maxIdentifierLength) bytes", field: "id")
            }
            id = s
        }
        return Envelope(type: type, id: id,
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
    public static func welcome(ref: String?, serverTime: Int64, session: String, node: String,
                               heartbeatSeconds: Int, limits: Limits) -> [UInt8] {
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
