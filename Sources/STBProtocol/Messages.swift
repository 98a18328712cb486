/// A frame from a box, after validation.
public enum InboundMessage: Sendable, Equatable {
    case hello(Hello)
    case ping(Ping)
    /// `metrics`, `event` or `log`, or the valid messages of a `batch`, in order, with the
    /// errors of the batch's invalid messages (each names its `messages[i]` field).
    case telemetry(Envelope, [TelemetryMessage], rejected: [ProtocolError] = [])
    /// `recommendations` (since 1.2): the box asks for its recommendations.
    case recommendations(RecommendationsRequest)
}

/// `recommendations` (box → hub, since 1.2): what the STB portal shows; the hub answers with a
/// `recommendations` frame carrying the same answer as the operator API's
/// `GET /api/v1/devices/{id}/recommendations`.
public struct RecommendationsRequest: Sendable, Equatable {
    public var envelope: Envelope
    /// How many items, 1...``maxN`` (default 10, as the API).
    public var n: Int
    /// The most items one request may ask for.
    public static let maxN = 100

    public init(envelope: Envelope, n: Int = 10) {
        self.envelope = envelope
        self.n = n
    }
}

/// The common envelope fields (docs/protocol.md, "Envelope").
public struct Envelope: Sendable, Equatable {
    /// The message type.
    public var type: String
    /// The sender's id for this message; the hub echoes it as `ref` in replies and errors.
    public var id: String?
    /// The sender's sequence number, increasing per boot.
    public var seq: Int64?
    /// The sender's clock, in milliseconds since the Unix epoch.
    public var ts: Int64?

    public init(type: String, id: String? = nil, seq: Int64? = nil, ts: Int64? = nil) {
        self.type = type
        self.id = id
        self.seq = seq
        self.ts = ts
    }
}

/// `hello`: the first frame of a session.
public struct Hello: Sendable, Equatable {
    public var envelope: Envelope
    /// The protocol version the box speaks.
    public var protocolVersion: Int
    /// Hardware model, e.g. `argus-sim-1`.
    public var model: String
    /// Firmware version.
    public var firmware: String
    /// A new random id at every boot; with `seq` it identifies a message across reconnects.
    public var bootId: String

    public init(envelope: Envelope, protocolVersion: Int = 1, model: String, firmware: String, bootId: String) {
        self.envelope = envelope
        self.protocolVersion = protocolVersion
        self.model = model
        self.firmware = firmware
        self.bootId = bootId
    }
}

/// `ping`: an application-level liveness check; the hub answers `pong`.
public struct Ping: Sendable, Equatable {
    public var envelope: Envelope
    public init(envelope: Envelope) { self.envelope = envelope }
}

/// The limits a hub announces in `welcome`.
public struct Limits: Sendable, Equatable {
    public var maxFrameBytes: Int
    public var maxBatch: Int
    public var messagesPerSecond: Int

    public init(maxFrameBytes: Int = STBProtocol.defaultMaxFrameBytes, maxBatch: Int = 100, messagesPerSecond: Int = 50) {
        self.maxFrameBytes = maxFrameBytes
        self.maxBatch = maxBatch
        self.messagesPerSecond = messagesPerSecond
    }
}

/// A validation failure, sent to the box as an `error` frame.
public struct ProtocolError: Error, Sendable, Equatable {
    public var code: ErrorCode
    public var reason: String
    /// The offending field, if one.
    public var field: String?
    /// The `id` of the message at fault, if it could be read.
    public var ref: String?

    public init(_ code: ErrorCode, _ reason: String, field: String? = nil, ref: String? = nil) {
        self.code = code
        self.reason = reason
        self.field = field
        self.ref = ref
    }
}
