/// Health figures from a heartbeat (`metrics`). Absent figures are nil.
public struct MetricsSample: Sendable, Equatable {
    public var cpu: Double?
    public var mem: Double?
    public var tempC: Double?
    public var uptimeSec: Double?
    public var rttMs: Double?
    public var bitrateKbps: Double?
    public var underruns: Double?
    public var droppedFrames: Double?

    public init(
        cpu: Double? = nil, mem: Double? = nil, tempC: Double? = nil, uptimeSec: Double? = nil, rttMs: Double? = nil,
        bitrateKbps: Double? = nil, underruns: Double? = nil, droppedFrames: Double? = nil
    ) {
        self.cpu = cpu; self.mem = mem; self.tempC = tempC; self.uptimeSec = uptimeSec; self.rttMs = rttMs
        self.bitrateKbps = bitrateKbps; self.underruns = underruns; self.droppedFrames = droppedFrames
    }

    /// Field names and accepted ranges, in wire order.
    nonisolated(unsafe) public static let fields: [(name: String, range: ClosedRange<Double>, path: WritableKeyPath<MetricsSample, Double?>)] = [
        ("cpu", 0...100, \.cpu), ("mem", 0...100, \.mem), ("tempC", -50...150, \.tempC),
        ("uptimeSec", 0...1e10, \.uptimeSec), ("rttMs", 0...600_000, \.rttMs), ("bitrateKbps", 0...10_000_000, \.bitrateKbps),
        ("underruns", 0...1e9, \.underruns), ("droppedFrames", 0...1e9, \.droppedFrames),
    ]
}

/// A viewing or app event (`event`).
public struct ViewingEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case tune, leave
        case standbyOn = "standby_on", standbyOff = "standby_off"
        case playStart = "play_start", playStop = "play_stop", playError = "play_error"
        case appCrash = "app_crash", portalReload = "portal_reload"
    }
    /// How a `tune` is watched (protocol 1.1, optional): a box that does not say is live.
    public enum Mode: String, Sendable, CaseIterable { case live, timeshift, catchup }
    public var kind: Kind
    /// The channel, required for `tune`; optional elsewhere.
    public var channel: String?
    /// The error code, required for `play_error`.
    public var code: String?
    /// `tune` only: live, time-shifted or catch-up viewing; nil when the box did not say.
    public var mode: Mode?

    public init(kind: Kind, channel: String? = nil, code: String? = nil, mode: Mode? = nil) {
        self.kind = kind
        self.channel = channel
        self.code = code
        self.mode = mode
    }
}

/// One log line (`log`).
public struct LogLine: Sendable, Equatable {
    public enum Level: String, Sendable, CaseIterable { case debug, info, warn, error }
    public var level: Level
    public var source: String
    public var text: String
    /// The `log_tail` execution this line answers, if any.
    public var tail: String?

    public init(level: Level, source: String, text: String, tail: String? = nil) {
        self.level = level
        self.source = source
        self.text = text
        self.tail = tail
    }
}

/// One telemetry message, from a frame of its own or from a `batch`.
public struct TelemetryMessage: Sendable, Equatable {
    public enum Body: Sendable, Equatable {
        case metrics(MetricsSample)
        case event(ViewingEvent)
        case log(LogLine)
        /// `command_status`: travels and is acknowledged like telemetry, so a report the hub
        /// acknowledged is never lost.
        case commandStatus(CommandStatus)
    }
    /// The box's sequence number within its boot.
    public var seq: Int64
    /// The box's clock, ms since the epoch.
    public var ts: Int64
    public var body: Body

    public init(seq: Int64, ts: Int64, body: Body) {
        self.seq = seq
        self.ts = ts
        self.body = body
    }
}

/// `command_status`: a box's report on one command it was sent.
public struct CommandStatus: Sendable, Equatable {
    public enum State: String, Sendable, CaseIterable {
        case received, inProgress = "in_progress", succeeded, failed, rejected
    }
    /// The command's `id` (the hub's job id).
    public var ref: String
    public var state: State
    /// e.g. `downloading`, `verifying`, `installing`, `rebooting`.
    public var progress: String?
    /// Why it failed or was rejected (≤ 512 bytes).
    public var reason: String?
    /// What it produced (`log_pull` lines, `diagnostics` figures), as sent.
    public var result: JSONValue?

    public init(ref: String, state: State, progress: String? = nil, reason: String? = nil, result: JSONValue? = nil) {
        self.ref = ref; self.state = state; self.progress = progress; self.reason = reason; self.result = result
    }

    public static let maxReason = 512
}

/// Limits on telemetry fields (docs/protocol.md, "Telemetry").
public enum TelemetryLimits {
    public static let maxLogText = 4096
    public static let maxSource = 64
}
