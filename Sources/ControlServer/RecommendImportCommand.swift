import ArgumentParser
import ArgusStore
import Foundation
import Logging
import MongoStore
import Recommend
import RecommendRuntime

/// The store connection of the `recommend` commands that write to it.
struct StoreOptions: ParsableArguments {
    @Option(help: "MongoDB connection string (env MONGODB_URI).")
    var mongodbURI = Env.string("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true&serverSelectionTimeoutMS=5000")

    @Option(help: "Database name (env ARGUS_DATABASE); default: the URI's, else argus.")
    var database: String?

    func open() throws -> MongoStore {
        try MongoStore(uri: mongodbURI, database: database ?? Env.values["ARGUS_DATABASE"], threads: 2, logger: Logger(label: "argus.store"))
    }

    /// Who the audit log names for a command run on the store's host.
    static var principal: Principal {
        Principal(tokenId: "-", name: "cli:\(ProcessInfo.processInfo.environment["USER"] ?? "unknown")", role: .admin)
    }
}

/// `argus-hub recommend import`: factors trained elsewhere (Spark MLlib, `implicit`) stored as a
/// model version, validated first: nothing is written for bad input and the promoted version
/// stays. Formats in docs/recommendations.md, "Importing factors".
struct RecommendImport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Store user (box) and item (channel) factors trained elsewhere as a recommendation model version."
    )

    @Option(help: "Box factors: a .csv (id,f0,…,fk-1 per line) or a .npy (rows × k, float32 or float64).")
    var users: String

    @Option(help: "Channel factors, in the same formats.")
    var items: String

    @Option(name: .customLong("user-ids"), help: "For a .npy --users: the box ids, one per line, in row order.")
    var userIDs: String?

    @Option(name: .customLong("item-ids"), help: "For a .npy --items: the channel ids, one per line, in row order.")
    var itemIDs: String?

    @Flag(inversion: .prefixedNo, help: "Promote the version at once (the default), so every node serves it within its refresh.")
    var promote = true

    @Option(help: "Days of stored viewing that give each box its watched channels and the popular channels.")
    var days = 28

    @Flag(help: "Print the report as JSON.")
    var json = false

    @OptionGroup var store: StoreOptions

    func validate() throws {
        guard (1...90).contains(days) else { throw ValidationError("--days must be from 1 to 90") }
        if users.hasSuffix(".npy") && userIDs == nil { throw ValidationError("--user-ids is required with a .npy --users") }
        if items.hasSuffix(".npy") && itemIDs == nil { throw ValidationError("--item-ids is required with a .npy --items") }
    }

    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw RecommendInputError(message: "cannot read \(path)") }
        return [UInt8](data)
    }

    static func table(_ path: String, ids: String?) throws -> FactorTable {
        do {
            if path.hasSuffix(".npy") {
                guard let ids else { throw RecommendInputError(message: "\(path): a .npy needs its ids file") }
                return try FactorImport.npy(read(path), file: path, ids: read(ids), idsFile: ids)
            }
            return try FactorImport.csv(read(path), file: path)
        } catch let e as FactorImportError {
            throw RecommendInputError(message: e.description)
        }
    }

    func run() async throws {
        let model: ALSModel
        do {
            model = try FactorImport.model(users: try Self.table(users, ids: userIDs), items: try Self.table(items, ids: itemIDs))
        } catch let e as FactorImportError {
            throw RecommendInputError(message: e.description)
        }
        let mongo = try store.open()
        var settings = RecommendSettings()
        settings.days = days
        let trainer = RecommendTrainer(store: mongo, node: "recommend-import", settings: settings, logger: Logger(label: "argus.recommend"))
        let source = "\(users) + \(items)"
        let report = try await trainer.importModel(model, source: source, promote: promote)
        await AuditLog(store: mongo, node: "recommend-import", logger: Logger(label: "argus.audit")).record(
            StoreOptions.principal, action: "recommendations.import", target: "\(report.version)",
            parameters: ["users": users, "items": items, "promote": "\(promote)", "boxes": "\(report.boxes)", "channels": "\(report.items)"],
            result: "ok")
        await mongo.shutdown()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(
                "imported version \(report.version)\(report.promoted ? ", promoted" : " (not promoted)"): \(report.boxes) boxes × \(report.items) channels × \(report.factors) factors"
            )
            print("boxes with viewing here: \(report.boxesWithViewing)")
            if report.unknownBoxes > 0 {
                print("boxes not registered here: \(report.unknownBoxes) (e.g. \(report.unknownBoxSample.prefix(5).joined(separator: ", ")))")
            }
            if report.unknownItems > 0 {
                print("channels without stored viewing: \(report.unknownItems) (e.g. \(report.unknownItemSample.prefix(5).joined(separator: ", ")))")
            }
        }
    }
}

/// `argus-hub recommend promote VERSION`: serve a stored version (e.g. the hub's own training
/// again after an imported model, which trainings do not replace by themselves).
struct RecommendPromote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "promote", abstract: "Promote a stored recommendation model version.")

    @Argument(help: "The version to serve.")
    var version: Int

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let mongo = try store.open()
        let recommend = RecommendStore(store: mongo)
        guard let doc = try await recommend.version(version) else { throw RecommendInputError(message: "no model version \(version)") }
        if let failed = doc["failed"]?.stringValue { throw RecommendInputError(message: "version \(version) failed (\(failed)); it cannot be served") }
        try await recommend.promote(version)
        await AuditLog(store: mongo, node: "recommend-promote", logger: Logger(label: "argus.audit")).record(
            StoreOptions.principal, action: "recommendations.promote", target: "\(version)", result: "ok")
        await mongo.shutdown()
        print("promoted version \(version)")
    }
}
