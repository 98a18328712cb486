import ArgusStore
import Foundation
import MongoStore
import Recommend
import Synchronization

/// Serves recommendations from the promoted model (docs/recommendations.md, "Serving"). Every node
/// serves: the model is loaded from the store once per version and checked for a newer one at
/// most every `refresh`.
package final class RecommendService: Sendable {
    package let store: RecommendStore
    let events: MongoCollection
    let refresh: Duration
    /// A box's most-watched items that "because you watched" is chosen from.
    let reasonItems = 5
    private let loaded = Mutex<Loaded?>(nil)
    /// Trending and the EPG's programmes (nil: channels from the model and popularity only).
    let whatIsOn: WhatIsOn?
    let whatIsOnCache = WhatIsOnCache()

    struct Loaded: Sendable {
        var version: Int
        var model: ALSModel
        /// Each box's channels, most-watched first.
        var history: MostWatched
        var popular: [String]
        var popularBySegment: [String: [String]]
        /// Factors trained elsewhere (`source: "import"`).
        var imported = false
        /// The box × programme model of the version, when it has one.
        var programme: ProgrammeFactors?
        var checkedAt: ContinuousClock.Instant
    }

    package init(store: MongoStore, refresh: Duration = .seconds(30), whatIsOn: WhatIsOn? = nil) {
        self.whatIsOn = whatIsOn
        self.store = RecommendStore(store: store)
        events = store.collection(Schema.events)
        self.refresh = refresh
    }

    /// The promoted model, loaded or refreshed as needed; nil before any training.
    func model() async throws -> Loaded? {
        if let l = loaded.withLock({ $0 }), ContinuousClock.now - l.checkedAt < refresh { return l }
        guard let version = try await store.currentVersion() else { return nil }
        if var l = loaded.withLock({ $0 }), l.version == version {
            l.checkedAt = .now
            loaded.withLock { $0 = l }
            return l
        }
        guard let doc = try await store.version(version), let parts = doc["parts"]?.documentValue else {
            throw RecommendStoreError.corrupt(version: version, part: "document")
        }
        func blob(_ part: String) async throws -> [UInt8] {
            try await store.blob(version: version, part: part, chunks: parts[part]?.intValue ?? 0)
        }
        let items = (doc["items"]?.arrayValue ?? []).compactMap(\.stringValue)
        let users = Packing.strings(try await blob("users"))
        let factors = doc["params"]?.documentValue?["factors"]?.intValue ?? 0
        let userFactors = Packing.floats(try await blob("userFactors"))
        let itemFactors = Packing.floats(try await blob("itemFactors"))
        guard factors > 0, userFactors.count == users.count * factors, itemFactors.count == items.count * factors,
            parts["historyOffsets"] != nil
        else {
            throw RecommendStoreError.corrupt(version: version, part: "factors")
        }
        var bySegment: [String: [String]] = [:]
        for entry in doc["popularBySegment"]?.arrayValue ?? [] {
            if let e = entry.documentValue, let m = e["model"]?.stringValue { bySegment[m] = (e["items"]?.arrayValue ?? []).compactMap(\.stringValue) }
        }
        let l = Loaded(
            version: version,
            model: ALSModel(factors: factors, userIDs: users, itemIDs: items, userFactors: userFactors, itemFactors: itemFactors),
            history: MostWatched(offsets: Packing.int32s(try await blob("historyOffsets")), items: Packing.int32s(try await blob("historyItems"))),
            popular: (doc["popular"]?.arrayValue ?? []).compactMap(\.stringValue), popularBySegment: bySegment,
            imported: doc["source"]?.stringValue == "import", programme: try await programmeFactors(doc, version: version, factors: factors),
            checkedAt: .now)
        loaded.withLock { $0 = l }
        return l
    }

    /// The channel a box is tuned to now, from its latest viewing event.
    func watching(_ device: String) async throws -> String? {
        guard let last = try await events.find(["d": .string(device)], sort: ["d": 1, "t": -1], limit: 1, projection: ["e": 1, "ch": 1]).first,
            last["e"]?.stringValue == "tune"
        else { return nil }
        return last["ch"]?.stringValue
    }

    /// The top `n` channels for `device` (whose hardware model is `segment`) from the model, or
    /// popularity on a cold start, each with a reason (`recommendations` adds trending and programmes).
    func channelRecommendations(device: String, segment: String?, n: Int) async throws -> Recommendations {
        let now = try await watching(device)
        guard let l = try await model() else {
            return Recommendations(device: device, modelVersion: nil, coldStart: true, watching: now, items: [])
        }
        let exclude = Set([now].compactMap { $0 })
        if let u = l.model.user(device) {
            let history = l.history.of(u).map(Int.init)
            // A box with factors but no viewing here (an imported model's) is still answered from its factors.
            if !history.isEmpty || l.imported {
                // New to the box: what it already watches and what it is watching now are left out.
                let excluded = Set(history).union(exclude.compactMap { l.model.item($0) })
                let items = l.model.recommend(user: u, n: n, exclude: excluded).map { scored -> Recommendations.Item in
                    let because = l.history.because(l.model, user: u, item: scored.item, reasons: reasonItems)
                    return Recommendations.Item(
                        channel: l.model.itemIDs[scored.item], score: Double(scored.score),
                        reason: because.map { .init(kind: "because_you_watched", channel: l.model.itemIDs[$0]) } ?? .init(kind: "for_you", channel: nil))
                }
                return Recommendations(device: device, modelVersion: l.version, coldStart: false, watching: now, items: items)
            }
        }
        // Cold start: what is popular among boxes of the same model, then among all.
        var items: [Recommendations.Item] = []
        var seen = exclude
        for (list, kind) in [(segment.flatMap { l.popularBySegment[$0] } ?? [], "popular_in_segment"), (l.popular, "popular")] {
            for ch in list where items.count < n && !seen.contains(ch) {
                seen.insert(ch)
                items.append(.init(channel: ch, score: nil, reason: .init(kind: kind, channel: nil)))
            }
        }
        return Recommendations(device: device, modelVersion: l.version, coldStart: true, watching: now, items: items)
    }
}

/// `GET /api/v1/devices/{id}/recommendations`: channels for a box, each with why.
package struct Recommendations: Sendable, Encodable, Equatable {
    package struct Reason: Sendable, Encodable, Equatable {
        /// `because_you_watched` (with `channel`), `trending`, `popular_in_segment`, `popular`, `for_you`.
        package var kind: String
        package var channel: String?
        /// For a programme: the programme watched that it is like (`because_you_watched`).
        package var programme: String?
    }

    package struct Item: Sendable, Encodable, Equatable {
        package var channel: String
        /// The model's score (absent for popularity answers).
        package var score: Double?
        package var reason: Reason
    }

    package var device: String
    /// The model version answering; nil before any model is trained.
    package var modelVersion: Int?
    /// True when the box has no history in the model: the answer is popularity.
    package var coldStart: Bool
    /// What the box is tuned to now (left out of the answer).
    package var watching: String?
    package var items: [Item]
    /// Programmes on now or starting within `horizonMinutes` (from the EPG; empty without one).
    package var programmes: [Programme] = []
    package var horizonMinutes: Int?
}

extension ALSModel {
    /// Cosine of two items' factors.
    func cosine(_ a: Int, _ b: Int) -> Float {
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for k in 0..<factors {
            let x = itemFactors[a * factors + k], y = itemFactors[b * factors + k]
            dot += x * y
            na += x * x
            nb += y * y
        }
        return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
    }
}
