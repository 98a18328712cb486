/// What is trending now (docs/recommendations.md, "Trending"): an item whose audience now rises
/// against its own baseline, the same daypart's average over the previous days, with a minimum
/// audience so that two boxes on a channel nobody watches are not a trend.
public struct TrendingRule: Sendable, Hashable {
    /// Least audience now (boxes, the average minute audience of the recent window).
    public var minAudience: Double = 5
    /// Least lift: audience now / baseline.
    public var minLift: Double = 1.5
    /// A baseline below this is taken as this (an item with no history is not infinitely up).
    public var baselineFloor: Double = 1

    public init(minAudience: Double = 5, minLift: Double = 1.5, baselineFloor: Double = 1) {
        self.minAudience = minAudience
        self.minLift = minLift
        self.baselineFloor = baselineFloor
    }
}

public enum Trending {
    public struct Entry: Sendable, Hashable {
        public var item: String
        /// Audience now and its baseline (boxes), and their ratio.
        public var audience: Double
        public var baseline: Double
        public var lift: Double

        public init(item: String, audience: Double, baseline: Double, lift: Double) {
            self.item = item
            self.audience = audience
            self.baseline = baseline
            self.lift = lift
        }
    }

    /// The trending items of `current` against `baseline` (absent: 0), most lifted first (then
    /// the larger audience, then the id, so the order is total).
    public static func rank(current: [String: Double], baseline: [String: Double], rule: TrendingRule = .init()) -> [Entry] {
        var out: [Entry] = []
        for (item, audience) in current where audience.isFinite && audience >= rule.minAudience {
            let base = baseline[item] ?? 0
            let lift = audience / max(base.isFinite ? base : 0, rule.baselineFloor)
            if lift >= rule.minLift { out.append(Entry(item: item, audience: audience, baseline: base, lift: lift)) }
        }
        return out.sorted { ($0.lift, $0.audience, $1.item) > ($1.lift, $1.audience, $0.item) }
    }
}
