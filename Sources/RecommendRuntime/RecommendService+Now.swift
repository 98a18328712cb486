import EPG
import Foundation
import RatingsRuntime
import Recommend

extension Recommendations {
    /// A programme on now or starting within the horizon, with why.
    package struct Programme: Sendable, Encodable, Equatable {
        package var channel: String
        package var title: String
        package var subTitle: String?
        package var season: Int?
        package var episode: Int?
        /// ISO 8601, UTC.
        package var start: String
        package var stop: String
        /// True when it has started.
        package var onNow: Bool
        /// The model's score of its channel for the box (absent for trending and popularity).
        package var score: Double?
        package var reason: Reason
    }
}

extension RecommendService {
    /// The top `n` channels and the top `n` programmes on now or soon for `device` (whose hardware
    /// model is `segment`), each with a reason (docs/recommendations.md, "Serving"):
    /// - up to `trendingPlaces` places go to channels (and their programmes) trending now;
    /// - then the model's channels new to the box, or on a cold start the popular ones of its segment;
    /// - programmes rank by their channel's score for the box (cold start: its popularity rank).
    /// What the box is watching now is left out.
    package func recommendations(device: String, segment: String?, n: Int) async throws -> Recommendations {
        var answer = try await channelRecommendations(device: device, segment: segment, n: n)
        guard let on = whatIsOn else { return answer }
        let snapshot = try await whatIsOnCache.get(on)
        let trending = snapshot.trending.map(\.item).filter { $0 != answer.watching }
        let front = trending.prefix(min(on.trendingPlaces, n)).map {
            Recommendations.Item(channel: $0, score: nil, reason: .init(kind: "trending", channel: nil))
        }
        let placed = Set(front.map(\.channel))
        answer.items = Array((front + answer.items.filter { !placed.contains($0.channel) }).prefix(n))
        answer.horizonMinutes = Int(on.horizonMinutes)
        answer.programmes = try await programmes(
            snapshot, device: device, segment: segment, watching: answer.watching, trending: Array(trending.prefix(on.trendingPlaces)), n: n)
        return answer
    }

    func programmes(
        _ snapshot: WhatIsOn.Snapshot, device: String, segment: String?, watching: String?, trending: [String], n: Int
    ) async throws -> [Recommendations.Programme] {
        guard !snapshot.programmes.isEmpty, n > 0 else { return [] }
        let l = try await model()
        let user = l.flatMap { $0.model.user(device) }
        // Popularity ranks, for boxes the model does not know: the segment's list, then the fleet's.
        var popularRank: [String: (Int, String)] = [:]
        if let l {
            for (list, kind) in [(segment.flatMap { l.popularBySegment[$0] } ?? [], "popular_in_segment"), (l.popular, "popular")] {
                for ch in list where popularRank[ch] == nil { popularRank[ch] = (popularRank.count, kind) }
            }
        }
        let trendingRank = Dictionary(trending.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        // (tier, order within the tier) — lower first.
        var ranked: [(tier: Int, order: Double, programme: Recommendations.Programme)] = []
        for p in snapshot.programmes where p.channel != watching {
            var item = Recommendations.Programme(
                channel: p.channel, title: p.title, subTitle: p.subTitle, season: p.season, episode: p.episode, start: XMLTVTime.iso8601(p.start),
                stop: XMLTVTime.iso8601(p.stop), onNow: p.start <= snapshot.readAt, score: nil, reason: .init(kind: "trending", channel: nil))
            if let r = trendingRank[p.channel] {
                ranked.append((0, Double(r), item))
            } else if let pm = l?.programme, let u = pm.model.user(device), let i = pm.model.item(p.title.trimmingCharacters(in: .whitespacesAndNewlines)) {
                // The programme model knows the box and the programme (its title).
                let score = pm.model.score(user: u, item: i)
                item.score = Double(score)
                item.reason = .init(
                    kind: "because_you_watched", channel: nil,
                    programme: pm.history.because(pm.model, user: u, item: i, reasons: reasonItems).map { pm.model.itemIDs[$0] })
                ranked.append((1, -Double(score), item))
            } else if let l, let u = user, let i = l.model.item(p.channel) {
                let score = l.model.score(user: u, item: i)
                item.score = Double(score)
                item.reason = .init(
                    kind: "because_you_watched", channel: l.history.because(l.model, user: u, item: i, reasons: reasonItems).map { l.model.itemIDs[$0] })
                ranked.append((2, -Double(score), item))
            } else if let (rank, kind) = popularRank[p.channel] {
                item.reason = .init(kind: kind, channel: nil)
                ranked.append((3, Double(rank), item))
            }
        }
        ranked.sort { a, b in
            (a.tier, a.order, a.programme.start, a.programme.channel) < (b.tier, b.order, b.programme.start, b.programme.channel)
        }
        return ranked.prefix(n).map(\.programme)
    }
}
