import Foundation
import Ratings

/// Each channel's audience in the last complete minute the rollups hold (docs/api.md,
/// "Ratings"): the minute before the newest build of today, or the last complete minute if the
/// build is newer. Built from the stored events like every other figure, so a box seen by two
/// nodes counts once; it lags real time by the build period and the telemetry applier.
package struct LiveAudience: Sendable, Encodable, Equatable {
    package struct Channel: Sendable, Encodable, Equatable {
        package var channel: String
        /// Boxes credited with the minute, all modes.
        package var boxes: Int?
        package var ratingPct: Double?
        package var suppressed: Bool?
    }

    /// The minute shown (ISO), and when the build it comes from ran.
    package var minute: String?
    package var builtAt: String?
    /// Boxes active today (the universe for `ratingPct`).
    package var universe: Int
    package var k: Int
    package var channels: [Channel]
}

extension RatingsService {
    /// The live audience at `now` (ms).
    package func live(now: Int64) async throws -> LiveAudience {
        let today = floorDiv(now, 86_400_000)
        let lastComplete = floorDiv(now, RatingsParameters.minuteMs) - 1
        // Today's build, or yesterday's just after midnight.
        let infos = try await store.dayInfos((today - 1)..<(today + 1))
        guard let info = infos.last else {
            return LiveAudience(minute: nil, builtAt: nil, universe: 0, k: parameters.suppressionK, channels: [])
        }
        let rollup = try await dayRollup(info)
        let minute = min(lastComplete, floorDiv(info.builtAt, RatingsParameters.minuteMs) - 1, (info.day + 1) * 1440 - 1)
        var counts: [String: Int] = [:]
        for (key, n) in rollup.audience where key.minute == minute { counts[key.channel, default: 0] += n }
        let universe = info.active.count
        let suppressed = universe < parameters.suppressionK
        let channels = counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { ch, n in
            suppressed
                ? LiveAudience.Channel(channel: ch, suppressed: true)
                : LiveAudience.Channel(channel: ch, boxes: n, ratingPct: universe > 0 ? Double(n) / Double(universe) * 100 : 0)
        }
        return LiveAudience(
            minute: Self.iso(minute), builtAt: Self.isoMs(info.builtAt), universe: universe, k: parameters.suppressionK, channels: channels)
    }
}
