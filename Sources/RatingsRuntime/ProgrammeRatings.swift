import Foundation
import Ratings

/// Programme ratings (docs/ratings-method.md, "Programmes"): each programme's slot is the
/// clock minutes that start inside `[start, stop)`; its AMR is the mean of those minutes'
/// audiences (all modes), its rating AMR / U, its share its box-minutes over every channel's in
/// the same minutes. Reach needs whole hours (the stored reach buckets), so it is given for
/// slots on the hour only.
package struct ProgrammeRatings: Sendable, Encodable, Equatable {
    package struct Row: Sendable, Encodable, Equatable {
        package var channel: String
        package var title: String
        package var subTitle: String?
        package var season: Int?
        package var episode: Int?
        package var start: String
        package var stop: String
        package var minutes: Int
        package var suppressed: Bool?
        package var boxMinutes: Int64?
        package var amr: Double?
        package var ratingPct: Double?
        package var ratingInterval: RatingsAnswer.Interval?
        package var sharePct: Double?
        package var reach: Int?
        package var reachPct: Double?
    }

    package var from: String
    package var to: String
    package var title: String?
    package var universe: RatingsAnswer.Universe
    package var sampleSize: Int
    package var k: Int
    package var programmes: [Row]
}

extension RatingsService {
    /// The ratings of the programmes overlapping `[from, to)` (minutes), optionally of some
    /// channels, whose title contains `title` (any case), the `top` by AMR or all by start.
    package func programmeRatings(
        from: Int64, to: Int64, channels: [String]?, title: String?, top: Int?, universe kind: RatingsQuery.Universe, epg: EPGStore
    ) async throws -> ProgrammeRatings {
        let needle = title?.lowercased()
        let programmes = try await epg.programmes(from: from * 60_000, to: to * 60_000, channels: channels)
            .filter { p in needle.map { p.title.lowercased().contains($0) || (p.subTitle?.lowercased().contains($0) ?? false) } ?? true }
        // Whole slots are rated, also where they start before `from`.
        let first = programmes.map { floorDiv($0.start, 86_400_000) }.min() ?? floorDiv(from, 1440)
        let last = programmes.map { floorDiv($0.stop - 1, 86_400_000) }.max() ?? first
        let infos = try await store.dayInfos(first..<(last + 1))
        var rollup = try Rollup(bucketMinutes: RatingsStore.reachBucketMinutes)
        for info in infos { try rollup.merge(try await dayRollup(info)) }
        let universe: Int =
            switch kind {
            case .active: BoxSet.union(infos.map(\.active)).count
            case .registered: try await registered(nil)
            }
        // Audience per (channel, minute) and of all channels per minute, all modes.
        var byChannel: [String: [Int64: Int]] = [:]
        var all: [Int64: Int] = [:]
        for (key, n) in rollup.audience {
            byChannel[key.channel, default: [:]][key.minute, default: 0] += n
            all[key.minute, default: 0] += n
        }
        let suppressed = universe < parameters.suppressionK
        var rows: [ProgrammeRatings.Row] = []
        for p in programmes {
            let slot = ceilDiv(p.start, 60_000)..<max(ceilDiv(p.start, 60_000), ceilDiv(p.stop, 60_000))
            var row = ProgrammeRatings.Row(
                channel: p.channel, title: p.title, subTitle: p.subTitle, season: p.season, episode: p.episode,
                start: Self.isoMs(p.start), stop: Self.isoMs(p.stop), minutes: slot.count)
            if suppressed {
                row.suppressed = true
            } else if !slot.isEmpty {
                let audience = byChannel[p.channel] ?? [:]
                let boxMinutes = slot.reduce(Int64(0)) { $0 + Int64(audience[$1] ?? 0) }
                let allMinutes = slot.reduce(Int64(0)) { $0 + Int64(all[$1] ?? 0) }
                let amr = Double(boxMinutes) / Double(slot.count)
                let rating = universe > 0 ? amr / Double(universe) : 0
                row.boxMinutes = boxMinutes
                row.amr = amr
                row.ratingPct = rating * 100
                row.ratingInterval = RatingsAnswer.Interval(.wilson(p: rating, n: universe, z: parameters.z))
                row.sharePct = allMinutes > 0 ? Double(boxMinutes) / Double(allMinutes) * 100 : nil
                if slot.lowerBound % 60 == 0 && slot.upperBound % 60 == 0,
                    let t = try? rollup.tallies(selection: MinuteSelection(slot), modes: Set(ViewingMode.allCases), universe: universe)
                {
                    let reach = t.channels[p.channel]?.reach1 ?? 0
                    row.reach = reach
                    row.reachPct = universe > 0 ? Double(reach) / Double(universe) * 100 : 0
                }
            }
            rows.append(row)
        }
        if let top {
            rows.sort { ($0.amr ?? -1, $1.start, $1.channel) > ($1.amr ?? -1, $0.start, $0.channel) }
            rows = Array(rows.prefix(top))
        }
        return ProgrammeRatings(
            from: Self.iso(from), to: Self.iso(to), title: title, universe: .init(kind: kind.rawValue, size: universe), sampleSize: universe,
            k: parameters.suppressionK, programmes: rows)
    }
}

func ceilDiv(_ a: Int64, _ b: Int64) -> Int64 { -floorDiv(-a, b) }
