import ArgusSupport
import Foundation
import MongoStore
import STBProtocol

/// Command parameters and box results are JSON on the wire and BSON in the store.
extension BSON {
    package init(json v: JSONValue) {
        switch v {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let n): self = .int64(n)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map { BSON(json: $0) })
        case .object(let m): self = .document(Document(m.map { ($0.0, BSON(json: $0.1)) }))
        }
    }

    /// JSON for API responses and frames; dates become ms since the epoch.
    package var json: JSONValue {
        switch self {
        case .null, .unsupported, .timestamp, .binary: return .null
        case .bool(let b): return .bool(b)
        case .int32(let n): return .int(Int64(n))
        case .int64(let n): return .int(n)
        case .double(let d): return .double(d)
        case .decimal128(let s): return .string(s)
        case .string(let s): return .string(s)
        case .objectID(let o): return .string(o.description)
        case .date(let d): return .int(Int64(d.timeIntervalSince1970 * 1000))
        case .array(let a): return .array(a.map(\.json))
        case .document(let d): return .object(d.fields.map { ($0.key, $0.value.json) })
        }
    }
}

extension Date {
    package var millis: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
    package init(millis: Int64) { self.init(timeIntervalSince1970: Double(millis) / 1000) }
}
