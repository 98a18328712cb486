import ArgusStore
import Foundation
import MongoStore
import Recommend

/// What an import stored (docs/recommendations.md, "Importing factors").
package struct ImportReport: Sendable, Encodable {
    package var version: Int
    package var promoted: Bool
    package var factors: Int
    package var boxes: Int
    package var items: Int
    /// Boxes of the model that this hub has viewing for (they get "because you watched").
    package var boxesWithViewing: Int
    /// Boxes the hub does not know (not registered), counted, and the first few by id.
    package var unknownBoxes: Int
    package var unknownBoxSample: [String]
    /// Items (channels) absent from the hub's stored viewing, counted, and the first few.
    package var unknownItems: Int
    package var unknownItemSample: [String]
}

extension RecommendTrainer {
    /// How many unknown ids an import report and its version document list.
    static let unknownSample = 20

    /// Stores factors trained elsewhere as a new version, like a trained one but with
    /// `source: "import"` and no evaluation figures, and promotes it when `promote` is set.
    /// Each box's watched channels and the popular channels (overall and per model segment) are
    /// read from the hub's stored viewing of the last `days` days, as for a training, restricted
    /// to the model's ids. The model was validated before (``FactorImport``): nothing is
    /// written for a model that failed, and the promoted version stays.
    package func importModel(_ model: ALSModel, source: String, promote: Bool) async throws -> ImportReport {
        try await store.createIndexes()
        var modelOf: [String: String] = [:]
        var known = Set<String>()
        for d in try await mongo.collection(Schema.devices).find([:], projection: ["model": 1]) {
            guard let id = d["_id"]?.stringValue else { continue }
            known.insert(id)
            if let m = d["model"]?.stringValue { modelOf[id] = m }
        }
        let log = try await interactions()
        let histories = UserHistories(log)
        let itemMap = log.items.names.map { model.item($0) }
        var logUser: [String: Int] = [:]
        for (u, name) in log.users.names.enumerated() { logUser[name] = u }
        var offsets: [Int32] = [0]
        var watched: [Int32] = []
        var minutes = [Double](repeating: 0, count: model.itemIDs.count)
        var segmentMinutes: [String: [Double]] = [:]
        var withViewing = 0
        for u in 0..<model.userIDs.count {
            if let lu = logUser[model.userIDs[u]] {
                let range = histories.start[lu]..<histories.start[lu + 1]
                var any = false
                for idx in range.sorted(by: { histories.weight[$0] > histories.weight[$1] }) {
                    guard let i = itemMap[Int(histories.item[idx])] else { continue }
                    watched.append(Int32(i))
                    minutes[i] += histories.weight[idx]
                    if let m = modelOf[model.userIDs[u]] {
                        segmentMinutes[m, default: [Double](repeating: 0, count: model.itemIDs.count)][i] += histories.weight[idx]
                    }
                    any = true
                }
                if any { withViewing += 1 }
            }
            offsets.append(Int32(watched.count))
        }
        func popular(_ m: [Double]) -> BSON {
            .array(m.indices.filter { m[$0] > 0 }.sorted { m[$0] > m[$1] }.prefix(20).map { .string(model.itemIDs[$0]) })
        }
        let unknownBoxes = model.userIDs.filter { !known.contains($0) }
        let viewed = Set(log.items.names)
        let unknownItems = model.itemIDs.filter { !viewed.contains($0) }
        let version = try await store.nextVersion()
        try await store.saveVersion([
            "_id": .int(version), "createdAt": .date(Date()), "kind": "channel", "source": "import", "promoted": false,
            "import": ["from": .string(source)],
            "params": ["factors": .int(model.factors)],
            "data": [
                "boxes": .int(model.userIDs.count), "items": .int(model.itemIDs.count), "pairs": .int(watched.count), "days": .int(settings.days),
                "boxesWithViewing": .int(withViewing), "unknownBoxes": .int(unknownBoxes.count),
                "unknownBoxSample": .array(unknownBoxes.prefix(Self.unknownSample).map { .string($0) }), "unknownItems": .int(unknownItems.count),
                "unknownItemSample": .array(unknownItems.prefix(Self.unknownSample).map { .string($0) }),
            ],
            "items": .array(model.itemIDs.map { .string($0) }), "popular": popular(minutes),
            "popularBySegment": .array(
                segmentMinutes.sorted { $0.key < $1.key }.map { .document(["model": .string($0.key), "items": popular($0.value)]) }),
        ])
        try await store.putBlob(version: version, part: "users", Packing.bytes(model.userIDs))
        try await store.putBlob(version: version, part: "userFactors", Packing.bytes(model.userFactors))
        try await store.putBlob(version: version, part: "itemFactors", Packing.bytes(model.itemFactors))
        try await store.putBlob(version: version, part: "historyOffsets", Packing.bytes(offsets))
        try await store.putBlob(version: version, part: "historyItems", Packing.bytes(watched))
        if promote {
            try await store.promote(version)
            versionGauge.record(version)
        }
        try await store.prune(keep: settings.keepVersions, current: promote ? version : try await store.currentVersion())
        return ImportReport(
            version: version, promoted: promote, factors: model.factors, boxes: model.userIDs.count, items: model.itemIDs.count,
            boxesWithViewing: withViewing, unknownBoxes: unknownBoxes.count, unknownBoxSample: Array(unknownBoxes.prefix(Self.unknownSample)),
            unknownItems: unknownItems.count, unknownItemSample: Array(unknownItems.prefix(Self.unknownSample)))
    }
}
