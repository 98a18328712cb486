import Foundation

/// Encodes `Encodable` values as BSON: `BSONEncoder().encode(record)` gives a ``Document``.
///
/// The mapping (the decoder reads the same, see ``BSONDecoder``):
/// - a struct or class (keyed container) is a document whose field names are the
///   `CodingKeys`' string values, in the order they were encoded; arrays are arrays;
///   `[String: T]` (and `[Int: T]`, keys as text) is a document;
/// - `String` is a string, `Bool` a bool, `Double`/`Float` a double;
/// - `Int`, `Int64`, `UInt32` and (when they fit) `UInt`/`UInt64` are int64, as ``BSON/int(_:)``
///   writes them; `Int32`, `Int16`, `Int8`, `UInt16`, `UInt8` are int32;
/// - `Date` is a BSON datetime (milliseconds since the epoch: finer precision is lost once
///   stored); `Data` is binary; ``ObjectID`` is an ObjectId;
/// - ``Document`` and ``BSON`` values are passed through as they are;
/// - a nil optional property is **absent** (the synthesized `encodeIfPresent` writes nothing);
///   an explicit `encodeNil` (a nil inside an array, a single-value nil) is BSON null;
/// - enums with raw values are their raw value;
/// - a field name with a NUL character (BSON names are C strings) is refused with
///   `EncodingError.invalidValue`.
public struct BSONEncoder: Sendable {
    public init() {}

    /// The value as a document; throws `EncodingError.invalidValue` if it does not encode as
    /// one (e.g. a bare `Int` or array).
    public func encode<T: Encodable>(_ value: T) throws -> Document {
        let encoded = try encodeValue(value)
        guard case .document(let d) = encoded else {
            throw EncodingError.invalidValue(
                value,
                .init(
                    codingPath: [],
                    debugDescription:
                        "\(T.self) encodes as a BSON \(encoded.typeName), not as a document"))
        }
        return d
    }

    /// The value as any BSON value, e.g. for a `$set` of one field.
    public func encodeValue<T: Encodable>(_ value: T) throws -> BSON {
        try BSONEncoderImpl.box(value, codingPath: [])
    }
}

/// A coding key for array positions and fields with no key type of their own.
struct BSONKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue; intValue = nil }
    init(intValue: Int) { stringValue = "Index \(intValue)"; self.intValue = intValue }
    init(index: Int) { self.init(intValue: index) }
    static let `super` = BSONKey(stringValue: "super")
}

// MARK: - Encoding tree

/// What an encoder has written so far. Containers share builders by reference, as `Encoder`
/// requires (a nested container keeps writing into its parent's value).
enum EncodedNode {
    case value(BSON)
    case document(DocumentBuilder)
    case array(ArrayBuilder)
    /// A `superEncoder`: resolved when the parent is.
    case deferred(BSONEncoderImpl)

    var bson: BSON {
        switch self {
        case .value(let v): return v
        case .document(let d): return .document(Document(d.fields.map { ($0.key, $0.value.bson) }))
        case .array(let a): return .array(a.items.map(\.bson))
        case .deferred(let e): return e.result
        }
    }
}

final class DocumentBuilder {
    private(set) var fields: [(key: String, value: EncodedNode)] = []
    private var positions: [String: Int] = [:]

    /// Sets a field; encoding a key twice replaces the value in place.
    func set(_ key: String, _ node: EncodedNode) {
        if let i = positions[key] { fields[i].value = node; return }
        positions[key] = fields.count
        fields.append((key: key, value: node))
    }
}

final class ArrayBuilder {
    var items: [EncodedNode] = []
}

final class BSONEncoderImpl: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var node: EncodedNode?

    init(codingPath: [any CodingKey]) { self.codingPath = codingPath }

    /// What was encoded; a value that encoded nothing is an empty document (as in JSON).
    var result: BSON { node?.bson ?? .document(Document()) }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let doc: DocumentBuilder
        if case .document(let d)? = node { doc = d } else { doc = DocumentBuilder(); node = .document(doc) }
        return KeyedEncodingContainer(KeyedContainer<Key>(doc: doc, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let array: ArrayBuilder
        if case .array(let a)? = node { array = a } else { array = ArrayBuilder(); node = .array(array) }
        return UnkeyedContainer(array: array, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleContainer(encoder: self) }

    /// Encodes one value at `codingPath`: BSON's own types and the primitives directly,
    /// anything else through its `encode(to:)`.
    static func box<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> BSON {
        if let direct = try direct(value, codingPath) { return direct }
        let encoder = BSONEncoderImpl(codingPath: codingPath)
        try value.encode(to: encoder)
        return encoder.result
    }

    private static func direct(_ value: Any, _ codingPath: [any CodingKey]) throws -> BSON? {
        switch value {
        case let v as String: return .string(v)
        case let v as Bool: return .bool(v)
        case let v as Int: return .int64(Int64(v))
        case let v as Int64: return .int64(v)
        case let v as Int32: return .int32(v)
        case let v as Double: return .double(v)
        case let v as Date: return .date(v)
        case let v as Document: return .document(v)
        case let v as BSON: return v
        case let v as ObjectID: return .objectID(v)
        case let v as Data: return .binary([UInt8](v))
        case let v as Float: return .double(Double(v))
        case let v as Int16: return .int32(Int32(v))
        case let v as Int8: return .int32(Int32(v))
        case let v as UInt8: return .int32(Int32(v))
        case let v as UInt16: return .int32(Int32(v))
        case let v as UInt32: return .int64(Int64(v))
        case let v as UInt64: return try unsigned(v, value, codingPath)
        case let v as UInt: return try unsigned(UInt64(v), value, codingPath)
        default: return nil
        }
    }

    private static func unsigned(_ v: UInt64, _ value: Any, _ codingPath: [any CodingKey]) throws -> BSON {
        guard let i = Int64(exactly: v) else {
            throw EncodingError.invalidValue(value, .init(codingPath: codingPath, debugDescription: "\(v) does not fit in a BSON int64"))
        }
        return .int64(i)
    }
}

// MARK: - Containers

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let doc: DocumentBuilder
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { doc.set(try checked(key), .value(.null)) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        doc.set(try checked(key), .value(try BSONEncoderImpl.box(value, codingPath: codingPath + [key])))
    }

    /// BSON field names are C strings: one with a NUL (a dictionary key, say) would be cut
    /// short by libbson, so it is refused.
    private func checked(_ key: Key) throws -> String {
        let name = key.stringValue
        guard !name.utf8.contains(0) else {
            throw EncodingError.invalidValue(name, .init(codingPath: codingPath + [key], debugDescription: "a BSON field name cannot contain NUL"))
        }
        return name
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = DocumentBuilder()
        doc.set(key.stringValue, .document(child))
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(doc: child, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = ArrayBuilder()
        doc.set(key.stringValue, .array(child))
        return UnkeyedContainer(array: child, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { superEncoder(key: BSONKey.super) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(key: key) }

    private func superEncoder(key: any CodingKey) -> any Encoder {
        let encoder = BSONEncoderImpl(codingPath: codingPath + [key])
        doc.set(key.stringValue, .deferred(encoder))
        return encoder
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let array: ArrayBuilder
    let codingPath: [any CodingKey]
    var count: Int { array.items.count }

    private var nextPath: [any CodingKey] { codingPath + [BSONKey(index: array.items.count)] }

    mutating func encodeNil() throws { array.items.append(.value(.null)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        array.items.append(.value(try BSONEncoderImpl.box(value, codingPath: nextPath)))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let child = DocumentBuilder()
        let path = nextPath
        array.items.append(.document(child))
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(doc: child, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = ArrayBuilder()
        let path = nextPath
        array.items.append(.array(child))
        return UnkeyedContainer(array: child, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let encoder = BSONEncoderImpl(codingPath: nextPath)
        array.items.append(.deferred(encoder))
        return encoder
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let encoder: BSONEncoderImpl
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { encoder.node = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        encoder.node = .value(try BSONEncoderImpl.box(value, codingPath: encoder.codingPath))
    }
}
