import CMongoC
import Foundation

// The one place where Swift values and libbson meet. C pointers never leave the closures
// below: callers get a `bson_t*` for the duration of `withBSON` only.

/// BSON type numbers from the BSON specification (bson_type_t).
enum BSONTypeCode: Int32 {
    case double = 0x01, utf8 = 0x02, document = 0x03, array = 0x04, binary = 0x05
    case oid = 0x07, bool = 0x08, dateTime = 0x09, null = 0x0A, int32 = 0x10
    case timestamp = 0x11, int64 = 0x12, decimal128 = 0x13
}

extension Document {
    /// Builds a temporary `bson_t` for this document and passes it to `body`.
    /// The pointer is destroyed when `body` returns and must not be kept.
    func withBSON<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        let b = Document.makeBSON(self)
        defer { bson_destroy(b) }
        return try body(b)
    }

    /// Reads a document out of a `bson_t` that libmongoc owns.
    init(copying bson: OpaquePointer) {
        self.init()
        guard let iter = argus_iter_new() else { return }
        defer { argus_iter_free(iter) }
        guard bson_iter_init(iter, bson) else { return }
        self = Document.read(iter)
    }

    static func makeBSON(_ doc: Document) -> OpaquePointer {
        let b = bson_new()!
        for (key, value) in doc.fields { append(value, key: key, to: b) }
        return b
    }

    private static func makeArray(_ values: [BSON]) -> OpaquePointer {
        let b = bson_new()!
        for (i, value) in values.enumerated() { append(value, key: String(i), to: b) }
        return b
    }

    private static func append(_ value: BSON, key: String, to b: OpaquePointer) {
        switch value {
        case .double(let v): bson_append_double(b, key, -1, v)
        case .string(let s):
            var s = s
            s.withUTF8 { buf in
                buf.withMemoryRebound(to: CChar.self) { p in
                    let empty: CChar = 0
                    if let base = p.baseAddress {
                        _ = bson_append_utf8(b, key, -1, base, Int32(buf.count))
                    } else {
                        withUnsafePointer(to: empty) { _ = bson_append_utf8(b, key, -1, $0, 0) }
                    }
                }
            }
        case .document(let d):
            let child = makeBSON(d)
            bson_append_document(b, key, -1, child)
            bson_destroy(child)
        case .array(let a):
            let child = makeArray(a)
            bson_append_array(b, key, -1, child)
            bson_destroy(child)
        case .binary(let bytes):
            bytes.withUnsafeBufferPointer { p in
                _ = bson_append_binary(b, key, -1, BSON_SUBTYPE_BINARY, p.baseAddress, UInt32(p.count))
            }
        case .objectID(let oid):
            oid.bytes.withUnsafeBufferPointer { p in _ = argus_append_oid(b, key, p.baseAddress!) }
        case .bool(let v): bson_append_bool(b, key, -1, v)
        case .date(let d): bson_append_date_time(b, key, -1, Int64((d.timeIntervalSince1970 * 1000).rounded()))
        case .null: bson_append_null(b, key, -1)
        case .int32(let v): bson_append_int32(b, key, -1, v)
        case .int64(let v): bson_append_int64(b, key, -1, v)
        case .timestamp(let t, let i): bson_append_timestamp(b, key, -1, t, i)
        case .decimal128(let text):
            var dec = bson_decimal128_t()
            if bson_decimal128_from_string(text, &dec) { bson_append_decimal128(b, key, -1, &dec) } else { bson_append_null(b, key, -1) }
        case .unsupported: bson_append_null(b, key, -1)
        }
    }

    private static func read(_ iter: OpaquePointer) -> Document {
        var fields: [(String, BSON)] = []
        while bson_iter_next(iter) {
            let key = String(cString: bson_iter_key(iter))
            fields.append((key, readValue(iter)))
        }
        return Document(fields)
    }

    private static func readArray(_ iter: OpaquePointer) -> [BSON] {
        var values: [BSON] = []
        while bson_iter_next(iter) { values.append(readValue(iter)) }
        return values
    }

    private static func readValue(_ iter: OpaquePointer) -> BSON {
        let code = Int32(argus_iter_type(iter))
        switch BSONTypeCode(rawValue: code) {
        case .double: return .double(bson_iter_double(iter))
        case .utf8:
            var len: UInt32 = 0
            guard let p = bson_iter_utf8(iter, &len) else { return .string("") }
            return .string(String(decoding: UnsafeRawBufferPointer(start: p, count: Int(len)), as: UTF8.self))
        case .document, .array:
            guard let child = argus_iter_new() else { return .null }
            defer { argus_iter_free(child) }
            guard bson_iter_recurse(iter, child) else { return .null }
            return code == BSONTypeCode.document.rawValue ? .document(read(child)) : .array(readArray(child))
        case .binary:
            var len: UInt32 = 0
            var subtype: Int32 = 0
            guard let p = argus_iter_binary(iter, &len, &subtype) else { return .binary([]) }
            return .binary(Array(UnsafeBufferPointer(start: p, count: Int(len))))
        case .oid:
            let p = argus_iter_oid_bytes(iter)!
            return .objectID(ObjectID(bytes: Array(UnsafeBufferPointer(start: p, count: 12)))!)
        case .bool: return .bool(bson_iter_bool(iter))
        case .dateTime: return .date(Date(timeIntervalSince1970: Double(bson_iter_date_time(iter)) / 1000))
        case .null: return .null
        case .int32: return .int32(bson_iter_int32(iter))
        case .int64: return .int64(bson_iter_int64(iter))
        case .timestamp: return .timestamp(seconds: argus_iter_timestamp_t(iter), increment: argus_iter_timestamp_i(iter))
        case .decimal128:
            var buf = [CChar](repeating: 0, count: 64)
            argus_iter_decimal128_string(iter, &buf)
            let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            return .decimal128(String(decoding: bytes, as: UTF8.self))
        case nil: return .unsupported(code)
        }
    }
}

extension ObjectID {
    /// A new ObjectId from libbson's generator (time, process, counter).
    public static func generate() -> ObjectID {
        var bytes = [UInt8](repeating: 0, count: 12)
        bytes.withUnsafeMutableBufferPointer { argus_oid_generate($0.baseAddress!) }
        return ObjectID(bytes: bytes)!
    }
}

extension Document {
    /// The document as relaxed extended JSON, for logs and error messages.
    public var extendedJSON: String {
        withBSON { b in
            var len = 0
            guard let s = bson_as_relaxed_extended_json(b, &len) else { return "{}" }
            defer { bson_free(s) }
            return String(cString: s)
        }
    }
}
