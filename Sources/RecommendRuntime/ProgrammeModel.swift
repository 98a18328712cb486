import ArgusStore
import Foundation
import MongoStore
import Ratings
import RatingsRuntime
import Recommend

/// The box × programme model beside the channel model (docs/recommendations.md, "The model"): a
/// programme is the guide's title (a series' episodes share it), its weight the minutes watched
/// with the later programmes of a tune down-weighted (`ProgrammeViewing`). Stored in the same
/// version as the channel model: the `programme` member of its document and `programme*` blobs
/// (part names without dots: they are keys of the document's `parts`).
struct ProgrammeFactors: Sendable {
    var model: ALSModel
    /// Each box's programmes, most-watched first (as the channel model's).
    var history: MostWatched
}

/// Each box's items, most-watched first (`UserHistories.mostWatchedFirst`, as stored): box u's are
/// `items[offsets[u]..<offsets[u + 1]]`.
struct MostWatched: Sendable {
    var offsets: [Int32]
    var items: [Int32]

    /// Box `u`'s items, most-watched first; empty for a box with none (or a short array).
    func of(_ u: Int) -> ArraySlice<Int32> {
        guard u >= 0, u + 1 < offsets.count else { return [] }
        let lo = Int(offsets[u]), hi = Int(offsets[u + 1])
        return lo < hi && hi <= items.count ? items[lo..<hi] : []
    }

    /// Of box `u`'s `reasons` most-watched items, the one most like `item` (cosine of `model`'s factors).
    func because(_ model: ALSModel, user u: Int, item: Int, reasons: Int) -> Int? {
        of(u).prefix(reasons).map(Int.init).max { model.cosine($0, item) < model.cosine($1, item) }
    }
}

extension RecommendTrainer {
    /// The last `days` UTC days of stored viewing as box × channel minutes and, where the EPG has
    /// the programmes, box × programme minutes; the latest minute is each pair's time.
    package func viewing() async throws -> (channels: InteractionLog, programmes: InteractionLog) {
        let builder = RatingsBuilder(store: mongo, node: node, logger: logger, now: now)
        let epg = EPGStore(store: mongo)
        let today = floorDiv(now(), 86_400_000)
        var channels: [String: [String: (Double, Int64)]] = [:]
        var programmes: [String: [String: (Double, Int64)]] = [:]
        for day in (today - Int64(settings.days) + 1)...today {
            let credits = try await builder.credits(day: day)
            guard !credits.isEmpty else { continue }
            var slots: [String: [ProgrammeViewing.Slot]] = [:]
            for p in try await epg.programmes(from: day * 86_400_000, to: (day + 1) * 86_400_000, channels: nil) {
                let title = p.title.trimmingCharacters(in: .whitespacesAndNewlines)
                guard !title.isEmpty else { continue }
                slots[p.channel, default: []].append(.init(start: floorDiv(p.start, 60_000), stop: floorDiv(p.stop, 60_000), item: title))
            }
            for k in slots.keys { slots[k]?.sort { $0.start < $1.start } }
            for (device, list) in credits {
                for c in list {
                    var e = channels[device, default: [:]][c.channel] ?? (0, 0)
                    e.0 += 1
                    e.1 = max(e.1, c.minute)
                    channels[device, default: [:]][c.channel] = e
                }
                guard !slots.isEmpty else { continue }
                for (item, w) in ProgrammeViewing.weights(minutes: list.map { (minute: $0.minute, channel: $0.channel) }, slots: slots) {
                    var e = programmes[device, default: [:]][item] ?? (0, 0)
                    e.0 += w.weight
                    e.1 = max(e.1, w.last)
                    programmes[device, default: [:]][item] = e
                }
            }
        }
        return (Self.log(channels), Self.log(programmes))
    }

    static func log(_ pairs: [String: [String: (Double, Int64)]]) -> InteractionLog {
        var log = InteractionLog()
        var times: [Double] = []
        for (user, items) in pairs.sorted(by: { $0.key < $1.key }) {
            for (item, (weight, last)) in items.sorted(by: { $0.key < $1.key }) {
                log.user.append(log.users.intern(user))
                log.item.append(log.items.intern(item))
                log.weight.append(weight)
                times.append(Double(last))
            }
        }
        log.timestamp = times
        return log
    }

    /// Evaluates and fits the programme model on `log` and stores it in `version`; false (and
    /// nothing stored) when fewer than two boxes or two programmes were watched. A fit that
    /// diverges throws, failing the version like the channel model's.
    func trainProgrammes(_ log: InteractionLog, version: Int) async throws -> Bool {
        guard Set(log.user).count >= 2, log.items.count >= 2 else { return false }
        let evaluation = try? OfflineEvaluation(parameters: settings.parameters, scaling: settings.scaling)
            .run(log, test: .holdout(.time, fraction: settings.holdoutFraction, seed: settings.parameters.seed))
        let histories = UserHistories(log)
        let matrix = histories.confidenceMatrix(settings.scaling)
        let parameters = settings.parameters
        let fitted = try await Task.detached { try ALSTrainer.fit(matrix, parameters: parameters) }.value
        let (offsets, watched) = histories.mostWatchedFirst()
        var doc: Document = [
            "items": .array(log.items.names.map { .string($0) }), "boxes": .int(histories.users), "pairs": .int(histories.pairs),
        ]
        if let e = evaluation {
            doc["evaluation"] = [
                "alsP10": .double(e.als.precision), "alsMAP10": .double(e.als.map), "alsNDCG10": .double(e.als.ndcg),
                "popularityP10": .double(e.popularity.precision), "testPairs": .int(e.testPairs),
            ]
        }
        try await store.putBlob(version: version, part: "programmeUsers", Packing.bytes(log.users.names))
        try await store.putBlob(version: version, part: "programmeUserFactors", Packing.bytes(fitted.userFactors))
        try await store.putBlob(version: version, part: "programmeItemFactors", Packing.bytes(fitted.itemFactors))
        try await store.putBlob(version: version, part: "programmeHistoryOffsets", Packing.bytes(offsets))
        try await store.putBlob(version: version, part: "programmeHistoryItems", Packing.bytes(watched))
        // Last: a version whose document names a programme model has all of its parts.
        try await store.saveVersion(["_id": .int(version), "programme": .document(doc)])
        return true
    }
}

extension RecommendService {
    /// The programme model of a version document, if it has one (nil when its parts are missing).
    func programmeFactors(_ doc: Document, version: Int, factors: Int) async throws -> ProgrammeFactors? {
        guard let p = doc["programme"]?.documentValue, let parts = doc["parts"]?.documentValue else { return nil }
        func blob(_ part: String) async throws -> [UInt8] {
            try await store.blob(version: version, part: part, chunks: parts[part]?.intValue ?? 0)
        }
        let items = (p["items"]?.arrayValue ?? []).compactMap(\.stringValue)
        let users = Packing.strings(try await blob("programmeUsers"))
        let userFactors = Packing.floats(try await blob("programmeUserFactors"))
        let itemFactors = Packing.floats(try await blob("programmeItemFactors"))
        guard factors > 0, userFactors.count == users.count * factors, itemFactors.count == items.count * factors else {
            throw RecommendStoreError.corrupt(version: version, part: "programmeFactors")
        }
        return ProgrammeFactors(
            model: ALSModel(factors: factors, userIDs: users, itemIDs: items, userFactors: userFactors, itemFactors: itemFactors),
            history: MostWatched(
                offsets: Packing.int32s(try await blob("programmeHistoryOffsets")), items: Packing.int32s(try await blob("programmeHistoryItems"))))
    }
}
