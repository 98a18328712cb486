import Foundation

/// A stored document that does not decode as the type asked for. Its description names the
/// collection, the document's `_id`, the field by its path and what went wrong, e.g.
/// `executions/_id=job1|stb-7: field "history[2].state": expected String, found int32`.
public struct BSONDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A required field is absent (or an array too short).
        case missingField
        /// The field holds another BSON type (null included) than the one expected.
        case typeMismatch
        /// The type is right but the value is not: an unknown enum value, a number that does
        /// not fit, or a type's own validation refused it.
        case invalidValue
    }

    public var kind: Kind
    /// The collection the document came from, if known.
    public var collection: String?
    /// The document's `_id`, if it has one.
    public var id: BSON?
    /// The field's path from the top of the document, e.g. `doc.history[2].state`; empty for
    /// the document itself.
    public var path: String
    /// What went wrong at `path`, e.g. `expected String, found int32`.
    public var reason: String

    public init(kind: Kind, collection: String?, id: BSON?, path: String, reason: String) {
        self.kind = kind
        self.collection = collection
        self.id = id
        self.path = path
        self.reason = reason
    }

    init(_ error: DecodingError, collection: String?, id: BSON?) {
        let kind: Kind, keys: [any CodingKey], reason: String
        switch error {
        case .keyNotFound(let key, let c): (kind, keys, reason) = (.missingField, c.codingPath + [key], c.debugDescription)
        case .valueNotFound(_, let c): (kind, keys, reason) = (.missingField, c.codingPath, c.debugDescription)
        case .typeMismatch(_, let c): (kind, keys, reason) = (.typeMismatch, c.codingPath, c.debugDescription)
        case .dataCorrupted(let c): (kind, keys, reason) = (.invalidValue, c.codingPath, c.debugDescription)
        @unknown default: (kind, keys, reason) = (.invalidValue, [], "\(error)")
        }
        self.init(kind: kind, collection: collection, id: id, path: Self.path(keys), reason: reason)
    }

    /// `a.b[2].c`: array positions in brackets, field names joined by dots.
    static func path(_ keys: [any CodingKey]) -> String {
        var out = ""
        for key in keys {
            if let i = key.intValue, key.stringValue == "Index \(i)" {
                out += "[\(i)]"
            } else {
                out += out.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return out
    }

    public var description: String {
        var place = [collection, id.map { "_id=\($0.idText)" }].compactMap { $0 }.joined(separator: "/")
        if place.isEmpty { place = "document" }
        return path.isEmpty ? "\(place): \(reason)" : "\(place): field \"\(path)\": \(reason)"
    }
}

extension BSON {
    /// The BSON type's name, for error messages.
    public var typeName: String {
        switch self {
        case .double: return "double"
        case .string: return "string"
        case .document: return "document"
        case .array: return "array"
        case .binary: return "binary"
        case .objectID: return "objectId"
        case .bool: return "bool"
        case .date: return "date"
        case .null: return "null"
        case .int32: return "int32"
        case .int64: return "int64"
        case .timestamp: return "timestamp"
        case .decimal128: return "decimal128"
        case .unsupported(let code): return "BSON type \(code)"
        }
    }

    var numberText: String {
        switch self {
        case .int32(let i): return String(i)
        case .int64(let i): return String(i)
        case .double(let d): return String(d)
        default: return typeName
        }
    }

    /// An `_id` as a log line shows it: strings as they are, numbers, ObjectIds in hex.
    var idText: String {
        switch self {
        case .string(let s): return s
        case .int32, .int64, .double: return numberText
        case .objectID(let o): return o.description
        default: return Document([("_id", self)]).extendedJSON
        }
    }
}

// MARK: - Codable conformances

// BSONEncoder and BSONDecoder pass these through unchanged (they never reach the methods
// below). Other coders (JSON, say) get the natural shape: numbers, strings, arrays, objects;
// dates and binary as those coders write them; an ObjectId as its hex text.

extension BSON: Codable {
    public init(from decoder: any Decoder) throws {
        if let d = decoder as? BSONDecoderImpl { self = d.value; return }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int64(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([BSON].self) {
            self = .array(a)
        } else {
            self = .document(try c.decode(Document.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        if let e = encoder as? BSONEncoderImpl { e.node = .value(self); return }
        var c = encoder.singleValueContainer()
        switch self {
        case .double(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .document(let v): try c.encode(v)
        case .array(let v): try c.encode(v)
        case .binary(let v): try c.encode(Data(v))
        case .objectID(let v): try c.encode(v.description)
        case .bool(let v): try c.encode(v)
        case .date(let v): try c.encode(v)
        case .null, .unsupported: try c.encodeNil()
        case .int32(let v): try c.encode(v)
        case .int64(let v): try c.encode(v)
        case .timestamp(let s, let i): try c.encode(["t": UInt64(s), "i": UInt64(i)])
        case .decimal128(let v): try c.encode(v)
        }
    }
}

extension Document: Codable {
    public init(from decoder: any Decoder) throws {
        if let d = decoder as? BSONDecoderImpl {
            guard case .document(let doc) = d.value else { throw BSONDecoderImpl.mismatch(Document.self, "document", d.value, d.codingPath) }
            self = doc
            return
        }
        let c = try decoder.container(keyedBy: BSONKey.self)
        self.init(try c.allKeys.map { ($0.stringValue, try c.decode(BSON.self, forKey: $0)) })
    }

    public func encode(to encoder: any Encoder) throws {
        if let e = encoder as? BSONEncoderImpl { e.node = .value(.document(self)); return }
        var c = encoder.container(keyedBy: BSONKey.self)
        for (key, value) in fields { try c.encode(value, forKey: BSONKey(stringValue: key)) }
    }
}

extension ObjectID: Codable {
    public init(from decoder: any Decoder) throws {
        if let d = decoder as? BSONDecoderImpl {
            guard case .objectID(let o) = d.value else { throw BSONDecoderImpl.mismatch(ObjectID.self, "ObjectId", d.value, d.codingPath) }
            self = o
            return
        }
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let o = ObjectID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\"\(text)\" is not 24 hex digits"))
        }
        self = o
    }

    public func encode(to encoder: any Encoder) throws {
        if let e = encoder as? BSONEncoderImpl { e.node = .value(.objectID(self)); return }
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
