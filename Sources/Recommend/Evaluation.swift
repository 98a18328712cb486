import Foundation

/// Ranking quality at k, as `implicit.evaluation.ranking_metrics_at_k` computes it.
package struct RankingMetrics: Sendable, Equatable {
    /// Σ hits / Σ min(k, |test_u|) over the evaluated users (a micro average).
    package let precision: Double
    /// Mean over users of AP@k = Σ_{hit at rank i} (hits so far / i) / min(k, |test_u|).
    package let map: Double
    /// Mean over users of DCG@k / IDCG@k with binary gains, 1/log2(rank + 1), and IDCG over
    /// min(k, |test_u|) hits.
    package let ndcg: Double
    /// Users with at least one test item: the ones evaluated.
    package let users: Int
}

/// Top-k lists and their metrics.
package enum RankingEvaluation {
    /// The metrics of `recommended[u]` (best first, at most k) against `relevant[u]` (the test
    /// items), over every u whose `relevant[u]` is not empty.
    package static func metrics(k: Int, recommended: [[Int32]], relevant: [[Int32]]) -> RankingMetrics {
        precondition(recommended.count == relevant.count && k > 0)
        var hits = 0.0
        var denominator = 0.0
        var apSum = 0.0
        var ndcgSum = 0.0
        var users = 0
        var idealPrefix = [0.0]
        for i in 0..<k { idealPrefix.append(idealPrefix[i] + 1 / log2(Double(i) + 2)) }
        for (recs, test) in zip(recommended, relevant) where !test.isEmpty {
            let likes = Set(test)
            let cut = min(k, likes.count)
            var hit = 0.0
            var ap = 0.0
            var dcg = 0.0
            for (i, item) in recs.prefix(k).enumerated() where likes.contains(item) {
                hit += 1
                ap += hit / Double(i + 1)
                dcg += 1 / log2(Double(i) + 2)
            }
            hits += hit
            denominator += Double(cut)
            apSum += ap / Double(cut)
            ndcgSum += dcg / idealPrefix[cut]
            users += 1
        }
        guard users > 0 else { return RankingMetrics(precision: 0, map: 0, ndcg: 0, users: 0) }
        return RankingMetrics(precision: hits / denominator, map: apSum / Double(users), ndcg: ndcgSum / Double(users), users: users)
    }

    /// For each user in `users`: the k items with the highest x_uᵀy_i, leaving out the user's
    /// training items (row u of `train`); ties go to the lower item index. Users are scored in
    /// blocks against tiles of items that stay in cache, on every core.
    package static func topK(
        userFactors: [Float], itemFactors: [Float], factors f: Int, train: SparseMatrix, users: [Int], k: Int, threads: Int
    ) -> [[Int32]] {
        let items = train.columns
        let block = 32
        let tile = 256
        var out = [[Int32]](repeating: [], count: users.count)
        userFactors.withUnsafeBufferPointer { xb in
            itemFactors.withUnsafeBufferPointer { yb in
                out.withUnsafeMutableBufferPointer { ob in
                    guard let xp = xb.baseAddress, let yp = yb.baseAddress, let op = ob.baseAddress else { return }
                    let o = SharedPointer(base: op)
                    forEachChunk(count: users.count, chunkSize: block, threads: threads) { _, range in
                        let n = range.count
                        let scores = UnsafeMutablePointer<Float>.allocate(capacity: n * items)
                        defer { scores.deallocate() }
                        var t = 0
                        while t < items {
                            let end = min(items, t + tile)
                            for (b, slot) in range.enumerated() {
                                let xu = xp + users[slot] * f
                                let row = scores + b * items
                                for i in t..<end { row[i] = Kernels.dot(xu, yp + i * f, f) }
                            }
                            t = end
                        }
                        for (b, slot) in range.enumerated() {
                            let row = scores + b * items
                            for e in train.range(ofRow: users[slot]) { row[Int(train.indices[e])] = -.infinity }
                            var top = TopK(k: k)
                            for i in 0..<items where row[i] > top.threshold { top.offer(i, row[i]) }
                            o.base[slot] = top.items.map { Int32($0) }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The popularity baseline: items ranked by how many training users have them (ties: lower
    /// index), each user's top k of that ranking minus their training items.
    package static func popularityTopK(train: SparseMatrix, users: [Int], k: Int) -> [[Int32]] {
        var count = [Int](repeating: 0, count: train.columns)
        for i in train.indices { count[Int(i)] += 1 }
        let ranking = (0..<train.columns).sorted { (count[$0], -$0) > (count[$1], -$1) }
        return users.map { u in
            let seen = Set(train.indices[train.range(ofRow: u)])
            var recs: [Int32] = []
            for i in ranking where !seen.contains(Int32(i)) {
                recs.append(Int32(i))
                if recs.count == k { break }
            }
            return recs
        }
    }
}
