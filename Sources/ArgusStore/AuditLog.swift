import ArgusSupport
import Foundation
import Logging
import MongoStore

/// One audited operator action: a document of `audit` (its `_id` is the store's ObjectId),
/// decoded with ``BSONDecoder``. The API shows it as its own view (HubAPI `AuditEntryView`).
package struct AuditEntry: Sendable, Codable, Equatable {
    package var at: Date
    package var actor: String
    package var tokenId: String
    package var role: String
    package var action: String
    package var target: String?
    package var parameters: [String: String]
    package var result: String
    package var node: String
}

/// The append-only `audit` collection. The API can read it; nothing in the hub updates or
/// deletes from it.
package struct AuditLog: Sendable {
    package let collection: MongoCollection
    package let node: String
    package let logger: Logger
    package let decodeFailures: DecodeFailures

    package init(store: MongoStore, node: String, logger: Logger) {
        collection = store.collection(Schema.audit)
        self.node = node
        self.logger = logger
        decodeFailures = DecodeFailures(collection: Schema.audit, logger: logger)
    }

    /// What one entry may hold: a caller's input can make it no larger than about 24 KB
    /// (32 parameters of 512 bytes, plus the short fields). Longer strings are cut at a
    /// character boundary and marked with how much was cut.
    package enum Bounds {
        package static let action = 64, target = 256, parameterKey = 64, parameterValue = 512, parameters = 32, result = 1024
    }

    /// `s` cut to at most `max` UTF-8 bytes, with a marker saying how many bytes were dropped.
    package static func bounded(_ s: String, _ max: Int) -> String {
        guard s.utf8.count > max else { return s }
        var out = ""
        var bytes = 0
        for ch in s {
            let n = ch.utf8.count
            if bytes + n > max { break }
            out.append(ch)
            bytes += n
        }
        return out + "…[+\(s.utf8.count - bytes) bytes]"
    }

    /// Records an action. A failure to write the audit entry is logged as an error; the
    /// action itself has already happened by then, so the caller is not failed.
    package func record(_ who: Principal, action: String, target: String?, parameters: [String: String] = [:], result: String) async {
        let params = parameters.sorted { $0.key < $1.key }
        var fields = params.prefix(Bounds.parameters).map {
            (Self.bounded($0.key, Bounds.parameterKey), BSON.string(Self.bounded($0.value, Bounds.parameterValue)))
        }
        if params.count > Bounds.parameters { fields.append(("_omitted", .string("\(params.count - Bounds.parameters) more parameters"))) }
        let entry: Document = [
            "at": .date(Date()), "actor": .string(who.name), "tokenId": .string(who.tokenId), "role": .string(who.role.rawValue),
            "action": .string(Self.bounded(action, Bounds.action)), "target": target.map { .string(Self.bounded($0, Bounds.target)) } ?? .null,
            "parameters": .document(Document(fields)),
            "result": .string(Self.bounded(result, Bounds.result)), "node": .string(node),
        ]
        do { try await collection.insertOne(entry) } catch {
            logger.error("audit write failed", metadata: [LogKey.auditAction: .string(action), LogKey.error: .string("\(error)")])
        }
    }

    /// Newest first; `before` pages back in time. An entry that does not decode is left out
    /// (counted and logged).
    package func list(actor: String?, action: String?, before: Date?, limit: Int) async throws -> [AuditEntry] {
        var q = Document()
        if let actor { q["actor"] = .string(actor) }
        if let action { q["action"] = .string(action) }
        if let before { q["at"] = ["$lt": .date(before)] }
        return decodeFailures.decodeEach(try await collection.find(q, sort: ["at": -1], limit: limit), as: AuditEntry.self)
    }
}
