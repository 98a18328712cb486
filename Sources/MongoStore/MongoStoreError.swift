import CMongoC

/// An error from the store. It names the operation and the collection, so a log line says
/// what failed where. The driver's own message is kept for logs; it is never sent to a box.
public struct MongoStoreError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, coarsely, so callers can decide what to do.
    public enum Kind: Sendable, Equatable {
        /// The connection string could not be parsed.
        case invalidURI
        /// No server answered within the server-selection timeout.
        case unreachable
        /// A unique index refused a write (code 11000).
        case duplicateKey
        /// The server refused a command or a write.
        case server
        /// A network or protocol failure on an established connection.
        case connection
        /// The store is shut down.
        case shutdown
        /// Anything else, e.g. a client-side validation error.
        case other
    }

    public let kind: Kind
    /// The operation that failed, e.g. `insertMany`.
    public let operation: String
    /// The collection involved, if any.
    public let collection: String?
    /// The server or driver error code.
    public let code: Int
    /// The driver's message.
    public let message: String

    public init(kind: Kind, operation: String, collection: String?, code: Int = 0, message: String) {
        self.kind = kind
        self.operation = operation
        self.collection = collection
        self.code = code
        self.message = message
    }

    public var description: String {
        let target = collection.map { " on \($0)" } ?? ""
        return "MongoDB \(operation)\(target) failed (\(kind), code \(code)): \(message)"
    }

    /// Builds an error from a libbson `bson_error_t`.
    static func from(_ error: UnsafePointer<bson_error_t>, operation: String, collection: String?) -> MongoStoreError {
        let domain = argus_error_domain(error)
        let code = Int(argus_error_code(error))
        let message = String(cString: argus_error_message(error))
        let kind: Kind
        switch (domain, code) {
        case (_, 11000), (_, 11001): kind = .duplicateKey
        case (UInt32(MONGOC_ERROR_SERVER_SELECTION.rawValue), _): kind = .unreachable
        case (UInt32(MONGOC_ERROR_STREAM.rawValue), _), (UInt32(MONGOC_ERROR_PROTOCOL.rawValue), _): kind = .connection
        case (UInt32(MONGOC_ERROR_SERVER.rawValue), _), (UInt32(MONGOC_ERROR_WRITE_CONCERN.rawValue), _),
            (UInt32(MONGOC_ERROR_QUERY.rawValue), _):
            kind = .server
        default: kind = .other
        }
        return MongoStoreError(kind: kind, operation: operation, collection: collection, code: code, message: message)
    }
}
