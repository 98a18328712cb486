/// A parsed JSON value. The protocol's frames are small, so a plain tree is enough; the
/// parser is strict (RFC 8259: no trailing commas, no comments, no leading zeros, valid
/// UTF-8 and escapes) and bounded in depth.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// An integer that fits in Int64 (no fraction, no exponent).
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// Members in document order. Duplicate keys are rejected by the parser.
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The member named `key` of an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members.first(where: { $0.0 == key })?.1 }
        return nil
    }
}

/// Why a text is not valid JSON, with the byte offset.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    /// True when the failure is invalid UTF-8 rather than JSON syntax.
    public var isUTF8: Bool
    public var description: String { "\(message) at byte \(offset)" }
}

/// Parses one JSON text.
public struct JSONParser {
    /// The deepest nesting accepted.
    public static let maxDepth = 32

    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONParseError) -> JSONValue {
        let array = Array(bytes)
        return try array.withUnsafeBufferPointer { (buf) throws(JSONParseError) -> JSONValue in
            var p = Parser(b: buf, i: 0)
            p.skipWS()
            let v = try p.value(depth: 0)
            p.skipWS()
            guard p.i == buf.count else { throw p.fail("unexpected data after the JSON value") }
            return v
        }
    }

    private struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        var i: Int

        func fail(_ m: String, utf8: Bool = false) -> JSONParseError { JSONParseError(offset: i, message: m, isUTF8: utf8) }

        mutating func skipWS() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
            guard depth <= JSONParser.maxDepth else { throw fail("nesting deeper than \(JSONParser.maxDepth)") }
            guard i < b.count else { throw fail("unexpected end of input") }
            switch b[i] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw fail("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws(JSONParseError) {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count else { throw fail("unexpected end of input") }
            for k in 0..<n where b[i + k] != word.utf8Start[k] { throw fail("invalid literal") }
            i += n
        }

        mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
            i += 1
            var members: [(String, JSONValue)] = []
            skipWS()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try string()
                if members.contains(where: { $0.0 == key }) { throw fail("duplicate key \"\(key)\"") }
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipWS()
                members.append((key, try value(depth: depth + 1)))
                skipWS()
                guard i < b.count else { throw fail("unexpected end of input") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
            i += 1
            var items: [JSONValue] = []
            skipWS()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipWS()
                items.append(try value(depth: depth + 1))
                skipWS()
                guard i < b.count else { throw fail("unexpected end of input") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func number() throws(JSONParseError) -> JSONValue {
            let start = i
            var isInt = true
            if b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, isDigit(b[i]) else { throw fail("invalid number") }
            if b[i] == UInt8(ascii: "0") {
                i += 1
                if i < b.count, isDigit(b[i]) { throw fail("leading zero in number") }
            } else {
                while i < b.count, isDigit(b[i]) { i += 1 }
            }
            if i < b.count, b[i] == UInt8(ascii: ".") {
                isInt = false
                i += 1
                guard i < b.count, isDigit(b[i]) else { throw fail("invalid number") }
                while i < b.count, isDigit(b[i]) { i += 1 }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                isInt = false
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard i < b.count, isDigit(b[i]) else { throw fail("invalid number") }
                while i < b.count, isDigit(b[i]) { i += 1 }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            if isInt, let v = Int64(text) { return .int(v) }
            guard let d = Double(text), d.isFinite else { throw fail("number out of range") }
            return .double(d)
        }

        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

        mutating func hex4() throws(JSONParseError) -> UInt32 {
            guard i + 4 <= b.count else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                default: throw fail("invalid \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func string() throws(JSONParseError) -> String {
            i += 1
            let start = i
            // Fast path: no escapes.
            while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\"), b[i] >= 0x20 { i += 1 }
            if i < b.count, b[i] == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: b[start..<i])
                guard let s = String(validating: slice, as: UTF8.self) else { throw fail("invalid UTF-8 in string", utf8: true) }
                i += 1
                return s
            }
            var out: [UInt8] = Array(UnsafeBufferPointer(rebasing: b[start..<i]))
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                if c < 0x20 { throw fail("control character in string") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { throw fail("unterminated escape") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else { throw fail("lone surrogate") }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("invalid surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("lone surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("invalid escape")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string", utf8: true) }
            return s
        }
    }
}

/// Appends JSON to a byte buffer. Used for every frame the hub sends, so no encoder runs on
/// the hot path.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    public mutating func beginObject() { separator(); bytes.append(UInt8(ascii: "{")); needsComma = false }
    public mutating func endObject() { bytes.append(UInt8(ascii: "}")); needsComma = true }
    public mutating func key(_ k: String) { separator(); Self.appendString(k, to: &bytes); bytes.append(UInt8(ascii: ":")); needsComma = false }
    public mutating func string(_ k: String, _ v: String) { key(k); Self.appendString(v, to: &bytes); needsComma = true }
    public mutating func int(_ k: String, _ v: some BinaryInteger) { key(k); bytes.append(contentsOf: String(v).utf8); needsComma = true }
    public mutating func bool(_ k: String, _ v: Bool) { key(k); bytes.append(contentsOf: (v ? "true" : "false").utf8); needsComma = true }
    public mutating func optionalString(_ k: String, _ v: String?) { if let v { string(k, v) } }
    public mutating func optionalInt(_ k: String, _ v: (some BinaryInteger)?) { if let v { int(k, v) } }
    /// A number as `JSONEncoder` writes it (shortest round-trip digits, no `.0` on whole values);
    /// `null` when not finite.
    public mutating func double(_ k: String, _ v: Double) { key(k); appendDouble(v); needsComma = true }
    public mutating func optionalDouble(_ k: String, _ v: Double?) { if let v { double(k, v) } }
    /// Opens an object as the member `k` (close it with ``endObject()``).
    public mutating func beginObject(_ k: String) { key(k); bytes.append(UInt8(ascii: "{")); needsComma = false }
    /// Opens an array as the member `k`; elements are ``beginObject()``/``raw(_:)``/``element(_:)``.
    public mutating func beginArray(_ k: String) { key(k); bytes.append(UInt8(ascii: "[")); needsComma = false }
    public mutating func endArray() { bytes.append(UInt8(ascii: "]")); needsComma = true }
    /// A string array element.
    public mutating func element(_ s: String) { separator(); Self.appendString(s, to: &bytes); needsComma = true }

    private mutating func appendDouble(_ v: Double) {
        guard v.isFinite else { return bytes.append(contentsOf: "null".utf8) }
        if v == v.rounded(), abs(v) < 1e15 { return bytes.append(contentsOf: String(Int64(v)).utf8) }
        bytes.append(contentsOf: v.description.utf8)
    }

    /// A member holding any JSON value.
    public mutating func value(_ k: String, _ v: JSONValue) { key(k); raw(v) }

    /// Appends a value (as an array element or after ``key(_:)``).
    public mutating func raw(_ v: JSONValue) {
        separator()
        switch v {
        case .null: bytes.append(contentsOf: Array("null".utf8))
        case .bool(let b): bytes.append(contentsOf: Array((b ? "true" : "false").utf8))
        case .int(let n): bytes.append(contentsOf: Array(String(n).utf8))
        case .double(let d): bytes.append(contentsOf: (d.isFinite ? "\(d)" : "null").utf8)
        case .string(let s): Self.appendString(s, to: &bytes)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            needsComma = false
            for i in items { raw(i) }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            needsComma = false
            for (k, m) in members { key(k); raw(m) }
            bytes.append(UInt8(ascii: "}"))
        }
        needsComma = true
    }

    private mutating func separator() { if needsComma { bytes.append(UInt8(ascii: ",")) } }

    /// Appends `s` as a JSON string literal, escaping what RFC 8259 requires.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
