import ArgusStore
import EPG
import Foundation
import MongoStore

/// Programme guides in the store (docs/storage.md, "EPG"): `epg_sources` (one document per
/// source: its current version, when it was imported, what was unmapped) and `epg_programmes`
/// (one per programme, per source version). An import is atomic per source: the new version's
/// programmes are written, then the source points at them, then the old version is deleted; a
/// feed that does not parse changes nothing.
package struct EPGStore: Sendable {
    package static let sourcesName = "epg_sources"
    package static let programmesName = "epg_programmes"
    let sources: MongoCollection
    let programmes: MongoCollection

    package init(store: MongoStore) {
        sources = store.collection(Self.sourcesName)
        programmes = store.collection(Self.programmesName)
    }

    package func createIndexes() async throws {
        try await programmes.createIndexes([IndexModel(name: "src_v_start", keys: ["src": 1, "v": 1, "start": 1])])
    }

    /// What an import did.
    package struct ImportResult: Sendable, Encodable, Equatable {
        package var source: String
        package var version: Int
        package var programmes: Int
        package var channels: [String]
        /// XMLTV channel ids that map to no hub channel (their programmes are left out).
        package var unmapped: [String]
        /// Repairs and skips, with their line (at most 100 listed).
        package var warnings: [String]
        package var warningCount: Int
    }

    /// Replaces `source` with the programmes of `document` as mapped by `mapping`.
    package func replace(source: String, _ document: EPGDocument, mapping: ChannelMapping, now: Date) async throws -> ImportResult {
        try await createIndexes()
        let mapped = mapping.apply(to: document)
        let version = (try await sources.findOne(["_id": .string(source)])?["v"]?.intValue ?? 0) + 1
        var docs: [Document] = []
        for (channel, list) in mapped.programmesByHubChannel {
            for p in list {
                var d: Document = [
                    "_id": .string("\(source)|\(version)|\(channel)|\(p.start)"), "src": .string(source), "v": .int(version),
                    "ch": .string(channel), "start": .date(Date(millis: p.start)), "stop": .date(Date(millis: p.stop)), "title": .string(p.title),
                ]
                if let sub = p.subTitles.first?.text { d["subTitle"] = .string(sub) }
                if let s = p.episode.season { d["season"] = .int(s) }
                if let e = p.episode.episode { d["episode"] = .int(e) }
                docs.append(d)
            }
        }
        _ = try await programmes.deleteMany(["src": .string(source), "v": .int(version)])  // an import that stopped halfway
        for k in stride(from: 0, to: docs.count, by: 500) { _ = try await programmes.insertMany(Array(docs[k..<min(docs.count, k + 500)])) }
        let result = ImportResult(
            source: source, version: version, programmes: docs.count, channels: mapped.programmesByHubChannel.keys.sorted(),
            unmapped: mapped.unmapped, warnings: document.warnings.prefix(100).map(\.description), warningCount: document.warnings.count)
        _ = try await sources.updateOne(
            ["_id": .string(source)],
            [
                "$set": [
                    "v": .int(version), "importedAt": .date(now), "programmes": .int(docs.count),
                    "unmapped": .array(mapped.unmapped.map { .string($0) }), "warnings": .int(document.warnings.count),
                ]
            ], upsert: true)
        _ = try await programmes.deleteMany(["src": .string(source), "v": ["$ne": .int(version)]])
        return result
    }

    /// Records the outcome of a scheduled fetch on the source (`lastError` nil after a success).
    package func recordFetch(source: String, url: String, error: String?, at: Date, fingerprint: String? = nil) async throws {
        var set: Document = ["url": .string(url), "lastFetchAt": .date(at)]
        set["lastError"] = error.map { .string(String($0.prefix(500))) } ?? .null
        if let fingerprint { set["sha256"] = .string(fingerprint) }
        _ = try await sources.updateOne(["_id": .string(source)], ["$set": .document(set)], upsert: true)
    }

    /// The SHA-256 of the guide a scheduled fetch last imported for `source`.
    package func fingerprint(source: String) async throws -> String? {
        try await sources.findOne(["_id": .string(source)], projection: ["sha256": 1])?["sha256"]?.stringValue
    }

    /// A stored programme, as ratings use it.
    package struct StoredProgramme: Sendable, Equatable {
        package var source: String
        package var channel: String
        package var start: Int64
        package var stop: Int64
        package var title: String
        package var subTitle: String?
        package var season: Int?
        package var episode: Int?
    }

    /// The current programmes overlapping `[from, to)` (ms), of `channels` when given.
    package func programmes(from: Int64, to: Int64, channels: [String]?) async throws -> [StoredProgramme] {
        let current = try await sources.find([:], projection: ["v": 1]).compactMap { d -> (String, Int)? in
            guard let id = d["_id"]?.stringValue, let v = d["v"]?.intValue else { return nil }
            return (id, v)
        }
        var out: [StoredProgramme] = []
        for (source, version) in current {
            // Programmes start before `to` and stop after `from`; none is longer than a day.
            var filter: Document = [
                "src": .string(source), "v": .int(version),
                "start": ["$gte": .date(Date(millis: from - 86_400_000)), "$lt": .date(Date(millis: to))],
            ]
            if let channels { filter["ch"] = ["$in": .array(channels.map { .string($0) })] }
            for d in try await programmes.find(filter) {
                guard let ch = d["ch"]?.stringValue, let start = d["start"]?.dateValue?.millis, let stop = d["stop"]?.dateValue?.millis,
                    let title = d["title"]?.stringValue, stop > from
                else { continue }
                out.append(
                    StoredProgramme(
                        source: source, channel: ch, start: start, stop: stop, title: title, subTitle: d["subTitle"]?.stringValue,
                        season: d["season"]?.intValue, episode: d["episode"]?.intValue))
            }
        }
        return out.sorted { ($0.start, $0.channel) < ($1.start, $1.channel) }
    }
}
