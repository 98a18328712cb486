import Foundation
import Testing

@testable import Recommend

/// The metrics written out the slow way, straight from their definitions in docs/recommendations.md.
private func reference(k: Int, recommended: [[Int32]], relevant: [[Int32]]) -> (p: Double, map: Double, ndcg: Double) {
    var hits = 0
    var den = 0
    var aps: [Double] = []
    var ndcgs: [Double] = []
    for (recs, test) in zip(recommended, relevant) where !test.isEmpty {
        let top = Array(recs.prefix(k))
        let rel = top.map { test.contains($0) }
        hits += rel.filter { $0 }.count
        den += min(k, test.count)
        var ap = 0.0
        for i in 0..<top.count where rel[i] {
            ap += Double(rel[0...i].filter { $0 }.count) / Double(i + 1)
        }
        aps.append(ap / Double(min(k, test.count)))
        let dcg = (0..<top.count).filter { rel[$0] }.map { 1 / log2(Double($0 + 2)) }.reduce(0, +)
        let idcg = (0..<min(k, test.count)).map { 1 / log2(Double($0 + 2)) }.reduce(0, +)
        ndcgs.append(dcg / idcg)
    }
    return (Double(hits) / Double(den), aps.reduce(0, +) / Double(aps.count), ndcgs.reduce(0, +) / Double(ndcgs.count))
}

@Suite("Ranking metrics")
struct MetricsTests {
    /// Worked by hand. User 0: test {1, 2, 3}, top 3 = [1, 9, 2]: hits at ranks 1 and 3.
    /// User 1: test {5}, top 3 = [7, 5, 8]: a hit at rank 2. User 2 has no test items: skipped.
    /// P@3 = (2 + 1) / (3 + 1) = 0.75.
    /// AP: user 0 (1/1 + 2/3) / 3 = 5/9; user 1 (1/2) / 1 = 1/2; MAP = (5/9 + 1/2) / 2 = 19/36.
    /// NDCG: user 0 (1 + 1/2) / (1 + 1/log2 3 + 1/2); user 1 (1/log2 3) / 1.
    @Test func handCheckedExample() {
        let m = RankingEvaluation.metrics(k: 3, recommended: [[1, 9, 2], [7, 5, 8], [4]], relevant: [[1, 2, 3], [5], []])
        #expect(m.users == 2)
        #expect(abs(m.precision - 0.75) < 1e-12)
        #expect(abs(m.map - 19.0 / 36.0) < 1e-12)
        let n0 = 1.5 / (1 + 1 / log2(3.0) + 0.5)
        let n1 = 1 / log2(3.0)
        #expect(abs(m.ndcg - (n0 + n1) / 2) < 1e-12)
    }

    /// More test items than k: the denominator is k, so a perfect list scores 1 everywhere.
    @Test func perfectListWithManyTestItems() {
        let m = RankingEvaluation.metrics(k: 2, recommended: [[4, 3]], relevant: [[1, 2, 3, 4]])
        #expect(m.precision == 1 && m.map == 1 && abs(m.ndcg - 1) < 1e-12)
        let none = RankingEvaluation.metrics(k: 2, recommended: [[8, 9]], relevant: [[1, 2, 3, 4]])
        #expect(none.precision == 0 && none.map == 0 && none.ndcg == 0)
    }

    @Test func propertyAgainstTheReference() {
        for seed in UInt64(1)...30 {
            var rng = SplitMix64(seed: seed)
            var recs: [[Int32]] = []
            var tests: [[Int32]] = []
            for _ in 0..<25 {
                let n = Int(rng.next() % 12)
                recs.append(Array(Array(0..<Int32(30)).shuffled(using: &rng).prefix(n)))
                let t = Int(rng.next() % 6)
                tests.append(Array(Array(0..<Int32(30)).shuffled(using: &rng).prefix(t)))
            }
            if tests.allSatisfy(\.isEmpty) { continue }
            let k = 1 + Int(rng.next() % 10)
            let got = RankingEvaluation.metrics(k: k, recommended: recs, relevant: tests)
            let want = reference(k: k, recommended: recs, relevant: tests)
            #expect(abs(got.precision - want.p) < 1e-12 && abs(got.map - want.map) < 1e-12 && abs(got.ndcg - want.ndcg) < 1e-12, "seed \(seed)")
        }
    }

    /// The blocked scorer's top k equals a brute-force ranking of every item by x_uᵀy_i with the
    /// training items removed; the popularity baseline skips what the user has.
    @Test func topKMatchesBruteForce() {
        let m = randomMatrix(users: 70, items: 300, perUser: 15, seed: 8)
        var rng = SplitMix64(seed: 2)
        let f = 12
        let x = (0..<(70 * f)).map { _ in rng.nextUnitFloat() - 0.5 }
        let y = (0..<(300 * f)).map { _ in rng.nextUnitFloat() - 0.5 }
        let users = Array(stride(from: 0, to: 70, by: 3))
        let got = RankingEvaluation.topK(userFactors: x, itemFactors: y, factors: f, train: m, users: users, k: 10, threads: 2)
        for (slot, u) in users.enumerated() {
            let seen = Set(m.indices[m.range(ofRow: u)])
            let scored = (0..<300).filter { !seen.contains(Int32($0)) }.map { i -> (Int, Double) in
                (i, (0..<f).map { Double(x[u * f + $0]) * Double(y[i * f + $0]) }.reduce(0, +))
            }
            let score = Dictionary(uniqueKeysWithValues: scored)
            // Ten unseen items, best first, and none left out scores higher (up to Float rounding).
            #expect(got[slot].count == 10 && Set(got[slot]).isDisjoint(with: seen), "user \(u)")
            let picked = got[slot].map { score[Int($0)] ?? .nan }
            #expect(zip(picked, picked.dropFirst()).allSatisfy { $0 >= $1 - 1e-5 }, "user \(u): not in order")
            let best = scored.filter { !got[slot].contains(Int32($0.0)) }.map(\.1).max() ?? -.infinity
            #expect((picked.last ?? .nan) >= best - 1e-5, "user \(u): a better item was left out")
        }
        let pop = RankingEvaluation.popularityTopK(train: m, users: [0], k: 5)
        #expect(pop[0].count == 5 && Set(pop[0]).isDisjoint(with: m.indices[m.range(ofRow: 0)]))
    }
}
