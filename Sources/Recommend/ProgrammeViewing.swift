/// Box × programme watch time from per-minute channel credit (docs/recommendations.md, "The
/// model"). A programme is an item of the guide (its series or title), so an episode on another
/// day is the same item. Following Hu, Koren & Volinsky (2008), the programmes a box goes on
/// watching after a tune without another tune count less: within a run of consecutive credited
/// minutes on one channel, the first programme's minutes weigh 1, the second's `decay`, the
/// third's `decay`², and so on.
package enum ProgrammeViewing {
    /// A programme's minutes on a channel, `[start, stop)` in minutes since 1970 (UTC).
    package struct Slot: Sendable, Hashable {
        package var start: Int64
        package var stop: Int64
        /// The item: the series or title.
        package var item: String

        package init(start: Int64, stop: Int64, item: String) {
            self.start = start
            self.stop = stop
            self.item = item
        }
    }

    /// Down-weighted minutes and the latest minute of each item, from one box's credited
    /// `minutes` (minute, channel; any order) and each channel's `slots` (sorted by start, not
    /// overlapping). A minute in no slot belongs to no programme.
    package static func weights(
        minutes: [(minute: Int64, channel: String)], slots: [String: [Slot]], decay: Double = 0.5
    ) -> [String: (weight: Double, last: Int64)] {
        var out: [String: (weight: Double, last: Int64)] = [:]
        var previous: (minute: Int64, channel: String)?
        var runItem: String?
        var rank = 0
        for m in minutes.sorted(by: { ($0.minute, $0.channel) < ($1.minute, $1.channel) }) {
            if let p = previous, p.channel == m.channel, p.minute + 1 == m.minute {
                // The same run.
            } else {
                runItem = nil
                rank = 0
            }
            previous = m
            guard let list = slots[m.channel], let slot = slot(containing: m.minute, in: list) else { continue }
            if slot.item != runItem {
                runItem = slot.item
                rank += 1
            }
            var e = out[slot.item] ?? (0, m.minute)
            e.weight += pow(decay, rank - 1)
            e.last = max(e.last, m.minute)
            out[slot.item] = e
        }
        return out
    }

    /// The slot of `list` (sorted by start) holding `minute`.
    static func slot(containing minute: Int64, in list: [Slot]) -> Slot? {
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].start <= minute { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0, list[lo - 1].stop > minute else { return nil }
        return list[lo - 1]
    }

    private static func pow(_ x: Double, _ n: Int) -> Double {
        var r = 1.0
        for _ in 0..<max(0, n) { r *= x }
        return r
    }
}
