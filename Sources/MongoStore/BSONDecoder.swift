import Foundation

/// Decodes `Decodable` values from BSON, the mapping ``BSONEncoder`` writes, a little more
/// leniently for numbers:
/// - an `Int` (any integer type) decodes from int32, int64, or a double with an exact integer
///   value (the mongo shell writes numbers as doubles), if it fits the type;
/// - a `Double`/`Float` decodes from double, int32 or int64;
/// - `String`, `Bool`, `Date` (BSON datetime), `Data` (binary), ``ObjectID`` only from
///   their own BSON type; ``Document`` from a document; ``BSON`` from anything;
/// - an optional is nil when its field is absent or null; a required field that is absent or
///   null is an error;
/// - fields the type does not know are ignored.
///
/// Every failure is a ``BSONDecodingError`` naming the field by its path
/// (`history[2].state`), what was expected and what was found; through
/// ``MongoCollection/decode(_:as:decoder:)`` it also names the collection and the `_id`.
public struct BSONDecoder: Sendable {
    public init() {}

    /// Decodes a whole document. `collection` (if given) and the document's `_id` are named in
    /// the error.
    public func decode<T: Decodable>(_ type: T.Type, from document: Document, collection: String? = nil) throws(BSONDecodingError) -> T {
        try decode(type, fromValue: .document(document), collection: collection, id: document["_id"])
    }

    /// Decodes any BSON value, e.g. one field of a document.
    public func decode<T: Decodable>(_ type: T.Type, fromValue value: BSON, collection: String? = nil, id: BSON? = nil) throws(BSONDecodingError) -> T {
        do {
            return try BSONDecoderImpl.unbox(type, value, codingPath: [])
        } catch let e as DecodingError {
            throw BSONDecodingError(e, collection: collection, id: id)
        } catch {
            throw BSONDecodingError(kind: .invalidValue, collection: collection, id: id, path: "", reason: "\(error)")
        }
    }
}

struct BSONDecoderImpl: Decoder {
    let value: BSON
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .document(let d) = value else { throw Self.mismatch(Document.self, "document", value, codingPath) }
        return KeyedDecodingContainer(KeyedContainer<Key>(document: d, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let a) = value else { throw Self.mismatch([BSON].self, "array", value, codingPath) }
        return UnkeyedContainer(items: a, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleContainer(value: value, codingPath: codingPath) }

    static func mismatch(_ type: Any.Type, _ expected: String, _ found: BSON, _ codingPath: [any CodingKey]) -> DecodingError {
        .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected \(expected), found \(found.typeName)"))
    }

    /// Decodes one value at `codingPath`. An error that is not a `DecodingError` (a type's own
    /// validation in `init(from:)`) becomes `dataCorrupted` here, where its path is known.
    static func unbox<T: Decodable>(_ type: T.Type, _ value: BSON, codingPath: [any CodingKey]) throws -> T {
        if let direct = try direct(type, value, codingPath) { return direct }
        do {
            return try T(from: BSONDecoderImpl(value: value, codingPath: codingPath))
        } catch let e as DecodingError {
            throw e
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(error)", underlyingError: error))
        }
    }

    /// BSON's own types and the primitives, read directly; nil for any other type.
    private static func direct<T>(_ type: T.Type, _ v: BSON, _ path: [any CodingKey]) throws -> T? {
        func fail(_ expected: String) -> DecodingError { mismatch(type, expected, v, path) }
        switch type {
        case is String.Type:
            guard case .string(let s) = v else { throw fail("String") }
            return s as? T
        case is Bool.Type:
            guard case .bool(let b) = v else { throw fail("Bool") }
            return b as? T
        case is Int.Type: return try integer(Int.self, v, path) as? T
        case is Int64.Type: return try integer(Int64.self, v, path) as? T
        case is Int32.Type: return try integer(Int32.self, v, path) as? T
        case is Double.Type:
            guard let d = floating(v) else { throw fail("Double") }
            return d as? T
        case is Date.Type:
            guard case .date(let d) = v else { throw fail("Date (a BSON datetime)") }
            return d as? T
        case is Document.Type:
            guard case .document(let d) = v else { throw fail("document") }
            return d as? T
        case is BSON.Type: return v as? T
        case is ObjectID.Type:
            guard case .objectID(let o) = v else { throw fail("ObjectId") }
            return o as? T
        case is Data.Type:
            guard case .binary(let b) = v else { throw fail("binary") }
            return Data(b) as? T
        case is Float.Type:
            guard let d = floating(v) else { throw fail("Float") }
            return Float(d) as? T
        case is Int16.Type: return try integer(Int16.self, v, path) as? T
        case is Int8.Type: return try integer(Int8.self, v, path) as? T
        case is UInt.Type: return try integer(UInt.self, v, path) as? T
        case is UInt64.Type: return try integer(UInt64.self, v, path) as? T
        case is UInt32.Type: return try integer(UInt32.self, v, path) as? T
        case is UInt16.Type: return try integer(UInt16.self, v, path) as? T
        case is UInt8.Type: return try integer(UInt8.self, v, path) as? T
        default: return nil
        }
    }

    private static func floating(_ v: BSON) -> Double? {
        switch v {
        case .double(let d): return d
        case .int32(let i): return Double(i)
        case .int64(let i): return Double(i)
        default: return nil
        }
    }

    /// int32, int64, or a double holding an exact integer; it must fit `I`.
    private static func integer<I: FixedWidthInteger>(_ type: I.Type, _ v: BSON, _ path: [any CodingKey]) throws -> I {
        let fits: I?
        switch v {
        case .int32(let i): fits = I(exactly: i)
        case .int64(let i): fits = I(exactly: i)
        case .double(let d) where d.isFinite && d == d.rounded(): fits = I(exactly: d)
        case .double:
            throw DecodingError.typeMismatch(
                type, .init(codingPath: path, debugDescription: "expected \(I.self), found double \(v.doubleValue ?? 0) (not a whole number)"))
        default: throw mismatch(type, "\(I.self)", v, path)
        }
        guard let fits else {
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "\(v.numberText) (\(v.typeName)) does not fit in \(I.self)"))
        }
        return fits
    }
}

// MARK: - Containers

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let document: Document
    let codingPath: [any CodingKey]
    /// The first value of each key, as ``Document``'s subscript reads it.
    private let values: [String: BSON]

    init(document: Document, codingPath: [any CodingKey]) {
        self.document = document
        self.codingPath = codingPath
        var values: [String: BSON] = [:]
        values.reserveCapacity(document.fields.count)
        for (k, v) in document.fields where values[k] == nil { values[k] = v }
        self.values = values
    }

    var allKeys: [Key] { document.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { values[key.stringValue] != nil }

    private func value(_ key: any CodingKey) throws -> BSON {
        guard let v = values[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "required field is missing"))
        }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key) == .null }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try BSONDecoderImpl.unbox(type, try value(key), codingPath: codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try BSONDecoderImpl(value: try value(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try BSONDecoderImpl(value: try value(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        BSONDecoderImpl(value: values[BSONKey.super.stringValue] ?? .null, codingPath: codingPath + [BSONKey.super])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        BSONDecoderImpl(value: values[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let items: [BSON]
    let codingPath: [any CodingKey]
    var currentIndex = 0
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [BSON], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    private func next(_ type: Any.Type) throws -> (BSON, [any CodingKey]) {
        let path = codingPath + [BSONKey(index: currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "the array has only \(items.count) elements"))
        }
        return (items[currentIndex], path)
    }

    mutating func decodeNil() throws -> Bool {
        let (v, _) = try next(Never.self)
        guard v == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (v, path) = try next(type)
        let decoded = try BSONDecoderImpl.unbox(type, v, codingPath: path)
        currentIndex += 1
        return decoded
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (v, path) = try next(Document.self)
        let c = try BSONDecoderImpl(value: v, codingPath: path).container(keyedBy: type)
        currentIndex += 1
        return c
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (v, path) = try next([BSON].self)
        let c = try BSONDecoderImpl(value: v, codingPath: path).unkeyedContainer()
        currentIndex += 1
        return c
    }

    mutating func superDecoder() throws -> any Decoder {
        let (v, path) = try next(BSON.self)
        currentIndex += 1
        return BSONDecoderImpl(value: v, codingPath: path)
    }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let value: BSON
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { value == .null }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try BSONDecoderImpl.unbox(type, value, codingPath: codingPath)
    }
}
