import ArgusSupport
import EPG
import Foundation
import Ratings
import RatingsRuntime
import Recommend
import Synchronization

/// What recommendations read besides the model (docs/recommendations.md, "Serving"): the ratings
/// rollups, for what is trending now, and the EPG, for the programmes on now or starting within
/// the horizon. Both are read at most once a `refreshSeconds` for every box.
package struct WhatIsOn: Sendable {
    package var ratings: RatingsService
    package var epg: EPGStore?
    package var clock: HubClock
    /// Programmes starting within this many minutes are offered beside those on now.
    package var horizonMinutes: Int64 = 60
    /// "Now" for trending: the average minute audience of this many minutes before the newest built minute.
    package var windowMinutes: Int64 = 15
    /// The baseline: the same daypart over this many previous days.
    package var baselineDays: Int64 = 7
    package var rule = TrendingRule()
    /// Places of a channel list given to trending channels, at most.
    package var trendingPlaces = 2
    package var refreshSeconds: Int64 = 60

    package init(ratings: RatingsService, epg: EPGStore?, clock: HubClock) {
        self.ratings = ratings
        self.epg = epg
        self.clock = clock
    }

    /// Trending channels and the programmes in the horizon, as read at one time.
    struct Snapshot: Sendable {
        var readAt: Int64
        var trending: [Trending.Entry]
        var programmes: [EPGStore.StoredProgramme]
    }

    /// Channels whose audience over the last built `windowMinutes` rises against the same
    /// daypart's average over the built days among the previous `baselineDays`. None while the
    /// day's universe is below k (the figures it would rest on are suppressed).
    func trending(now: Int64) async throws -> [Trending.Entry] {
        let minuteMs = RatingsParameters.minuteMs
        let today = floorDiv(now, 86_400_000)
        guard let built = try await ratings.store.dayInfos((today - 1)..<(today + 1)).last else { return [] }
        let end = min(floorDiv(now, minuteMs), floorDiv(built.builtAt, minuteMs), (built.day + 1) * 1440)
        let start = end - windowMinutes
        let recent = try await ratings.answer(
            RatingsQuery.parse(["from": RatingsService.iso(start), "to": RatingsService.iso(end), "measures": "amr"], dayparts: ratings.dayparts))
        guard let row = recent.series.first, recent.universe.size >= ratings.parameters.suppressionK else { return [] }
        var current: [String: Double] = [:]
        for c in row.channels { if let amr = c.amr { current[c.channel] = amr } }
        let day = floorDiv(end - 1, 1440)
        let baselineRange = ["from": RatingsService.iso((day - baselineDays) * 1440), "to": RatingsService.iso(day * 1440), "measures": "amr"]
        var q = baselineRange
        if let part = ratings.dayparts.daypart(ofMinute: end - 1) { q["daypart"] = part.name }
        let base = try await ratings.answer(RatingsQuery.parse(q, dayparts: ratings.dayparts))
        // Over the days that were built: a day the hub did not run (or before it was installed) is
        // not a day of zero viewing.
        let scale = base.daysBuilt > 0 ? Double(base.daysInRange) / Double(base.daysBuilt) : 0
        var baseline: [String: Double] = [:]
        for row in base.series {
            for c in row.channels { if let amr = c.amr { baseline[c.channel, default: 0] += amr * scale / Double(base.series.count) } }
        }
        return Trending.rank(current: current, baseline: baseline, rule: rule)
    }

    /// Programmes on now or starting within the horizon, of every mapped channel.
    func programmes(now: Int64) async throws -> [EPGStore.StoredProgramme] {
        guard let epg else { return [] }
        let until = now + horizonMinutes * RatingsParameters.minuteMs
        return try await epg.programmes(from: now, to: until, channels: nil).filter { $0.start < until && $0.stop > now }
    }
}

/// The latest `WhatIsOn.Snapshot`, shared by every request.
final class WhatIsOnCache: Sendable {
    let snapshot = Mutex<WhatIsOn.Snapshot?>(nil)

    func get(_ on: WhatIsOn) async throws -> WhatIsOn.Snapshot {
        let now = on.clock.nowMillis()
        if let s = snapshot.withLock({ $0 }), now - s.readAt < on.refreshSeconds * 1000 * Int64(max(1, on.clock.speed)), now >= s.readAt {
            return s
        }
        let s = WhatIsOn.Snapshot(readAt: now, trending: try await on.trending(now: now), programmes: try await on.programmes(now: now))
        snapshot.withLock { $0 = s }
        return s
    }
}
