import Foundation
import Logging
import MongoStore

/// One audited operator action.
struct AuditEntry: Sendable, Codable, Equatable {
    var at: Date
    var actor: String
    var tokenId: String
    var role: String
    var action: String
    var target: String?
    var parameters: [String: String]
    var result: String
    var node: String
}

/// The append-only `audit` collection. The API can read it; nothing in the hub updates or
/// deletes from it.
struct AuditLog: Sendable {
    let collection: MongoCollection
    let node: String
    let logger: Logger

    init(store: MongoStore, node: String, logger: Logger) {
        collection = store.collection(Schema.audit)
        self.node = node
        self.logger = logger
    }

    /// Records an action. A failure to write the audit entry is logged as an error; the
    /// action itself has already happened by then, so the caller is not failed.
    func record(_ who: Principal, action: String, target: String?, parameters: [String: String] = [:], result: String) async {
        let entry: Document = [
            "at": .date(Date()), "actor": .string(who.name), "tokenId": .string(who.tokenId), "role": .string(who.role.rawValue),
            "action": .string(action), "target": target.map { .string($0) } ?? .null,
            "parameters": .document(Document(parameters.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            "result": .string(result), "node": .string(node),
        ]
        do { try await collection.insertOne(entry) }
        catch { logger.error("audit write failed", metadata: ["audit.action": .string(action), "error": .string("\(error)")]) }
    }

    /// Newest first; `before` pages back in time.
    func list(actor: String?, action: String?, before: Date?, limit: Int) async throws -> [AuditEntry] {
        var q = Document()
        if let actor { q["actor"] = .string(actor) }
        if let action { q["action"] = .string(action) }
        if let before { q["at"] = ["$lt": .date(before)] }
        return try await collection.find(q, sort: ["at": -1], limit: limit).map { d in
            AuditEntry(at: d["at"]?.dateValue ?? .distantPast, actor: d["actor"]?.stringValue ?? "",
                       tokenId: d["tokenId"]?.stringValue ?? "", role: d["role"]?.stringValue ?? "",
                       action: d["action"]?.stringValue ?? "", target: d["target"]?.stringValue,
                       parameters: Dictionary(uniqueKeysWithValues: (d["parameters"]?.documentValue ?? [:]).fields.map { ($0.key, $0.value.stringValue ?? "") }),
                       result: d["result"]?.stringValue ?? "", node: d["node"]?.stringValue ?? "")
        }
    }
}
