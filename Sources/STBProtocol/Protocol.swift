/// The STB wire protocol, version 1. `docs/protocol.md` is its specification; the files in
/// `docs/protocol/examples/` are its examples, and both this module's tests and the C agent's
/// are held to them.
public enum STBProtocol {
    /// The protocol version a box states in `hello` and the hub confirms in `welcome`.
    public static let version = 1
    /// The WebSocket path of the device gateway.
    public static let path = "/v1/stb"
    /// The largest text frame the hub accepts by default, in bytes.
    public static let defaultMaxFrameBytes = 64 * 1024
}

/// WebSocket close codes the hub sends (docs/protocol.md, "Close codes").
public enum CloseCode: UInt16, Sendable, CaseIterable {
    /// The box closed normally, or the hub ends the session with nothing wrong.
    case normal = 1000
    /// The hub is shutting down (drain); reconnect to another node or later.
    case goingAway = 1001
    /// WebSocket protocol violation.
    case protocolError = 1002
    /// The frame was larger than the hub's hard frame limit.
    case messageTooBig = 1009
    /// The hub failed internally.
    case internalError = 1011
    /// The hub cannot take more telemetry now (its spool is full); reconnect later and resend.
    case tryAgainLater = 1013
    /// A newer connection for the same box replaced this one. Do not reconnect at once.
    case replaced = 4000
    /// The box's credentials were revoked. Do not reconnect.
    case revoked = 4001
    /// No frame or pong arrived within the idle timeout.
    case idleTimeout = 4002
    /// The box did not send `hello` first, or in time.
    case helloRequired = 4003
    /// The box kept exceeding its rate limit.
    case rateLimited = 4029

    /// The reason text sent with the close frame.
    public var reason: String {
        switch self {
        case .normal: return "normal closure"
        case .goingAway: return "hub shutting down"
        case .protocolError: return "protocol error"
        case .messageTooBig: return "frame too large"
        case .internalError: return "internal error"
        case .tryAgainLater: return "hub overloaded; try again later"
        case .replaced: return "replaced by a newer connection"
        case .revoked: return "credentials revoked"
        case .idleTimeout: return "idle timeout"
        case .helloRequired: return "hello required"
        case .rateLimited: return "rate limit exceeded"
        }
    }
}

/// Error codes carried by `error` frames (docs/protocol.md, "Errors").
public enum ErrorCode: String, Sendable, CaseIterable {
    /// The frame is not valid JSON, or not a JSON object.
    case invalidJSON = "invalid_json"
    /// The frame's bytes are not valid UTF-8.
    case invalidUTF8 = "invalid_utf8"
    /// A required field is missing.
    case missingField = "missing_field"
    /// A field has the wrong type, or a value out of range.
    case invalidField = "invalid_field"
    /// The `type` is not one this hub knows.
    case unknownType = "unknown_type"
    /// The frame is larger than `limits.maxFrameBytes`.
    case frameTooLarge = "frame_too_large"
    /// Binary frames are reserved for a later version.
    case binaryNotSupported = "binary_not_supported"
    /// Fragmented messages are not supported; send each message in one frame.
    case fragmentedFrame = "fragmented_frame"
    /// The first frame of a session must be `hello`.
    case helloRequired = "hello_required"
    /// `hello` was sent twice in one session.
    case duplicateHello = "duplicate_hello"
    /// More messages than `limits.messagesPerSecond` allows; the frame was not accepted.
    case rateLimited = "rate_limited"
    /// The hub cannot answer this request now (since 1.2: `recommendations` while its store or
    /// model is unavailable, or while the node is busy with other boxes' requests); retry later.
    case unavailable = "unavailable"
}
