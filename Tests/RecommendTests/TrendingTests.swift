import Testing

@testable import Recommend

/// The trending rule against a brute-force reading of its definition.
@Suite struct TrendingTests {
    @Test func aRiseAboveTheBaselineWithEnoughAudienceTrends() {
        let current = ["news": 40.0, "sport": 12, "kids": 9, "tiny": 3, "new": 6]
        let baseline = ["news": 10.0, "sport": 10, "kids": 4, "tiny": 0.5]
        let trending = Trending.rank(current: current, baseline: baseline)
        // news 4x, kids 2.25x, new 6x (no history: floor 1); sport 1.2x is not a rise; tiny is too small.
        #expect(trending.map(\.item) == ["new", "news", "kids"])
        #expect(trending.first?.lift == 6)
    }

    @Test func theRankingFollowsTheDefinitionOnRandomAudiences() {
        for seed in (0..<200).map({ 0x7E_0000 + UInt64($0) }) {
            var rng = SplitMix64(seed: seed)
            var current: [String: Double] = [:]
            var baseline: [String: Double] = [:]
            for i in 0..<Int(rng.next() % 30) {
                current["c\(i)"] = Double(rng.next() % 60)
                if rng.next() % 4 != 0 { baseline["c\(i)"] = Double(rng.next() % 400) / 10 }
            }
            let rule = TrendingRule(minAudience: Double(rng.next() % 10), minLift: 1 + Double(rng.next() % 30) / 10, baselineFloor: 1)
            let got = Trending.rank(current: current, baseline: baseline, rule: rule)
            let expected = current.keys.filter { c in
                let a = current[c] ?? 0
                return a >= rule.minAudience && a / max(baseline[c] ?? 0, 1) >= rule.minLift
            }
            #expect(Set(got.map(\.item)) == Set(expected), "seed \(seed)")
            #expect(zip(got, got.dropFirst()).allSatisfy { $0.lift >= $1.lift }, "seed \(seed)")
        }
    }
}
