import STBProtocol

/// The commands a box runs (docs/protocol.md, "Commands").
public enum CommandName: String, Sendable, CaseIterable, Codable {
    case reboot
    case factoryReset = "factory_reset"
    case firmwareUpdate = "firmware_update"
    case message
    case reloadPortal = "reload_portal"
    case setConfig = "set_config"
    case logPull = "log_pull"
    case logTail = "log_tail"
    case diagnostics
}

/// Why an operator's command was refused; nothing is stored for it.
public struct CommandError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The parameter at fault, e.g. `params.sha256`.
    public var field: String?
    public var message: String
    public init(_ message: String, field: String? = nil) {
        self.message = message
        self.field = field
    }
    public var description: String { message }
}

/// A validated command: its name and its parameters, normalised (defaults filled in).
public struct Command: Sendable, Equatable {
    public var name: CommandName
    public var params: [(String, JSONValue)]

    public static func == (a: Command, b: Command) -> Bool { a.name == b.name && JSONValue.object(a.params) == JSONValue.object(b.params) }

    /// The `set_config` keys a box accepts, with their checks.
    public static let configKeys: [String: @Sendable (JSONValue) -> Bool] = [
        "logLevel": {
            if case .string(let s) = $0 { return ["debug", "info", "warn", "error"].contains(s) }; return false
        },
        "metricsIntervalSec": {
            if case .int(let n) = $0 { return (5...3600).contains(n) }; return false
        },
    ]

    /// Validates `name` and `params` (a JSON object, or nil for none). Unknown commands and
    /// unknown parameters are refused, so a typo never reaches a box.
    public static func validate(name: String, params: JSONValue?) throws(CommandError) -> Command {
        guard let cmd = CommandName(rawValue: name) else {
            throw CommandError("unknown command \"\(name)\"; known: \(CommandName.allCases.map(\.rawValue).joined(separator: ", "))", field: "name")
        }
        var given: [(String, JSONValue)] = []
        if let params {
            guard case .object(let members) = params else { throw CommandError("params must be an object", field: "params") }
            given = members
        }
        var p = Params(given)
        var out: [(String, JSONValue)] = []
        switch cmd {
        case .reboot, .factoryReset, .reloadPortal, .diagnostics:
            break
        case .firmwareUpdate:
            let version = try p.string("version", maxBytes: 64)
            let url = try p.string("url", maxBytes: 2048)
            guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.utf8.count > 8 else {
                throw CommandError("url must be an http:// or https:// URL", field: "params.url")
            }
            let size = try p.int("size", 1...(8 << 30))
            let sha = try p.string("sha256", maxBytes: 64).lowercased()
            guard sha.utf8.count == 64, sha.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                throw CommandError("sha256 must be 64 hex digits", field: "params.sha256")
            }
            out = [("version", .string(version)), ("url", .string(url)), ("size", .int(size)), ("sha256", .string(sha))]
        case .message:
            let text = try p.string("text", maxBytes: 512)
            let duration = try p.int("durationSec", 1...3600, default: 10)
            out = [("text", .string(text)), ("durationSec", .int(duration))]
        case .setConfig:
            guard case .object(let values)? = p.take("values"), !values.isEmpty else {
                throw CommandError("values must be a non-empty object", field: "params.values")
            }
            for (k, v) in values {
                guard let check = configKeys[k] else {
                    throw CommandError("\(k) is not a settable key; allowed: \(configKeys.keys.sorted().joined(separator: ", "))", field: "params.values.\(k)")
                }
                guard check(v) else { throw CommandError("invalid value for \(k)", field: "params.values.\(k)") }
            }
            out = [("values", .object(values))]
        case .logPull:
            out = [("lines", .int(try p.int("lines", 1...5000, default: 500)))]
            if p.has("since") { out.append(("since", .int(try p.int("since", 0...253_402_300_799_999)))) }
        case .logTail:
            out = [("durationSec", .int(try p.int("durationSec", 1...600)))]
        }
        if let extra = p.remaining.first {
            throw CommandError("unknown parameter \(extra) for \(cmd.rawValue)", field: "params.\(extra)")
        }
        return Command(name: cmd, params: out)
    }
}

/// Takes parameters one by one, so what is left over is unknown.
struct Params {
    var members: [(String, JSONValue)]
    init(_ m: [(String, JSONValue)]) { members = m }

    var remaining: [String] { members.map(\.0) }
    func has(_ k: String) -> Bool { members.contains { $0.0 == k } }

    mutating func take(_ k: String) -> JSONValue? {
        guard let i = members.firstIndex(where: { $0.0 == k }) else { return nil }
        return members.remove(at: i).1
    }

    mutating func string(_ k: String, maxBytes: Int) throws(CommandError) -> String {
        guard let v = take(k) else { throw CommandError("\(k) is required", field: "params.\(k)") }
        guard case .string(let s) = v, !s.isEmpty, s.utf8.count <= maxBytes else {
            throw CommandError("\(k) must be a string of 1 to \(maxBytes) bytes", field: "params.\(k)")
        }
        return s
    }

    mutating func int(_ k: String, _ range: ClosedRange<Int64>, default def: Int64? = nil) throws(CommandError) -> Int64 {
        guard let v = take(k) else {
            if let def { return def }
            throw CommandError("\(k) is required", field: "params.\(k)")
        }
        guard case .int(let n) = v, range.contains(n) else {
            throw CommandError("\(k) must be an integer from \(range.lowerBound) to \(range.upperBound)", field: "params.\(k)")
        }
        return n
    }
}
