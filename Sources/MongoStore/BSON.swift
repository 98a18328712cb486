import Foundation

/// A BSON value. Only the types Argus stores are first class; anything else that a server
/// returns (regex, code, min/max key, ...) is kept as ``BSON/unsupported(_:)`` with its type number.
public enum BSON: Sendable, Hashable {
    case double(Double)
    case string(String)
    case document(Document)
    case array([BSON])
    case binary([UInt8])
    case objectID(ObjectID)
    case bool(Bool)
    /// A UTC datetime, in milliseconds since the Unix epoch.
    case date(Date)
    case null
    case int32(Int32)
    case int64(Int64)
    case timestamp(seconds: UInt32, increment: UInt32)
    /// A decimal128, kept as its canonical text.
    case decimal128(String)
    case unsupported(Int32)

    /// The value as a string, if it is one.
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// The value as a bool, if it is one.
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// The value as a document, if it is one.
    public var documentValue: Document? { if case .document(let d) = self { return d }; return nil }
    /// The value as an array, if it is one.
    public var arrayValue: [BSON]? { if case .array(let a) = self { return a }; return nil }
    /// The value as a date, if it is one.
    public var dateValue: Date? { if case .date(let d) = self { return d }; return nil }
    /// Any numeric BSON value as Int, if it fits.
    public var intValue: Int? {
        switch self {
        case .int32(let v): return Int(v)
        case .int64(let v): return Int(v)
        case .double(let v): return v.isFinite && v == v.rounded() && abs(v) < 9e15 ? Int(v) : nil
        default: return nil
        }
    }
    /// Any numeric BSON value as Double.
    public var doubleValue: Double? {
        switch self {
        case .int32(let v): return Double(v)
        case .int64(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }
}

/// A 12-byte MongoDB ObjectId.
public struct ObjectID: Sendable, Hashable, CustomStringConvertible {
    /// The raw 12 bytes.
    public let bytes: [UInt8]

    /// Wraps 12 raw bytes; returns nil for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 12 else { return nil }
        self.bytes = bytes
    }

    /// Parses 24 hex digits.
    public init?(_ hex: String) {
        guard hex.utf8.count == 24 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(12)
        var it = hex.utf8.makeIterator()
        while let hi = it.next(), let lo = it.next() {
            guard let h = ObjectID.nibble(hi), let l = ObjectID.nibble(lo) else { return nil }
            out.append(h << 4 | l)
        }
        self.bytes = out
    }

    /// 24 lowercase hex digits.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var s: [UInt8] = []
        s.reserveCapacity(24)
        for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0xf)]) }
        return String(decoding: s, as: UTF8.self)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// An ordered BSON document. Keys keep their insertion order, as MongoDB requires for
/// sort and index specifications.
public struct Document: Sendable, Hashable, ExpressibleByDictionaryLiteral, Sequence {
    /// The fields, in order.
    public private(set) var fields: [(key: String, value: BSON)]

    /// An empty document.
    public init() { fields = [] }

    /// A document with these fields, in this order.
    public init(_ fields: [(String, BSON)]) { self.fields = fields.map { (key: $0.0, value: $0.1) } }

    public init(dictionaryLiteral elements: (String, BSON)...) { self.init(elements) }

    /// The value stored under `key`; setting nil removes the field, setting an existing key replaces it in place.
    public subscript(key: String) -> BSON? {
        get { fields.first(where: { $0.key == key })?.value }
        set {
            if let i = fields.firstIndex(where: { $0.key == key }) {
                if let newValue { fields[i].value = newValue } else { fields.remove(at: i) }
            } else if let newValue {
                fields.append((key: key, value: newValue))
            }
        }
    }

    /// The keys, in order.
    public var keys: [String] { fields.map(\.key) }
    /// True when the document has no fields.
    public var isEmpty: Bool { fields.isEmpty }

    public func makeIterator() -> IndexingIterator<[(key: String, value: BSON)]> { fields.makeIterator() }

    public static func == (lhs: Document, rhs: Document) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for f in fields { hasher.combine(f.key); hasher.combine(f.value) }
    }
}

extension BSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    /// Integer literals become int64, which is what MongoDB counters and limits expect.
    public init(integerLiteral value: Int) { self = .int64(Int64(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: BSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, BSON)...) { self = .document(Document(elements)) }
    public init(nilLiteral: ()) { self = .null }
}

extension BSON {
    /// An int64 value from a Swift Int.
    public static func int(_ v: Int) -> BSON { .int64(Int64(v)) }
}
