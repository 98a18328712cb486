import Foundation

/// How watch time becomes confidence (docs/recommendations.md, "Confidence").
package enum ConfidenceScaling: Sendable, Equatable {
    /// `c = 1 + α·log(1 + t/ε)`, t in minutes: the hub's scaling.
    case logarithmic(alpha: Double, epsilon: Double)
    /// `c = α·t`: what `implicit` does with its `alpha` and a raw matrix (its values are taken as
    /// the confidence itself), for comparisons.
    case linear(alpha: Double)

    /// The confidence of a pair watched for `t` minutes in total.
    package func confidence(_ t: Double) -> Float {
        switch self {
        case .logarithmic(let a, let e): return Float(1 + a * log1p(t / e))
        case .linear(let a): return Float(a * t)
        }
    }

    /// Refuses parameters that give no usable confidence.
    package func validate() throws(InteractionError) {
        switch self {
        case .logarithmic(let a, let e):
            guard a.isFinite, a >= 0, e.isFinite, e > 0 else {
                throw InteractionError(.unusable, line: nil, "alpha must be finite and ≥ 0 and epsilon finite and > 0")
            }
        case .linear(let a):
            guard a.isFinite, a > 0 else { throw InteractionError(.unusable, line: nil, "alpha must be finite and > 0") }
        }
    }
}

/// Each user's distinct items, ascending, with the total weight and the latest timestamp of the
/// pair's rows: the log with repeats merged.
package struct UserHistories: Sendable {
    /// Number of users (rows).
    package let users: Int
    /// Number of items (columns).
    package let items: Int
    /// User `u`'s pairs are `start[u]..<start[u + 1]`.
    package var start: [Int]
    /// Item of each pair.
    package var item: [Int32]
    /// Summed weight of each pair.
    package var weight: [Double]
    /// Latest timestamp of each pair (0 when the log has none).
    package var time: [Double]

    /// Number of pairs.
    package var pairs: Int { item.count }

    /// Each user's items, most-watched first, as CSR: user u's are `items[offsets[u]..<offsets[u + 1]]`
    /// (what serving chooses "because you watched" from).
    package func mostWatchedFirst() -> (offsets: [Int32], items: [Int32]) {
        var offsets: [Int32] = [0]
        var items: [Int32] = []
        items.reserveCapacity(pairs)
        for u in 0..<users {
            for idx in (start[u]..<start[u + 1]).sorted(by: { weight[$0] > weight[$1] }) { items.append(item[idx]) }
            offsets.append(Int32(items.count))
        }
        return (offsets, items)
    }

    /// Merges the rows of `log` by (user, item).
    package init(_ log: InteractionLog) {
        users = log.users.count
        items = log.items.count
        var count = [Int](repeating: 0, count: users + 1)
        for u in log.user { count[Int(u) + 1] += 1 }
        for u in 0..<users { count[u + 1] += count[u] }
        var next = Array(count.dropLast())
        var order = [Int](repeating: 0, count: log.count)
        for (r, u) in log.user.enumerated() {
            order[next[Int(u)]] = r
            next[Int(u)] += 1
        }
        var s = [0]
        var it: [Int32] = []
        var w: [Double] = []
        var t: [Double] = []
        s.reserveCapacity(users + 1)
        it.reserveCapacity(log.count)
        w.reserveCapacity(log.count)
        t.reserveCapacity(log.count)
        for u in 0..<users {
            let rows = order[count[u]..<count[u + 1]].sorted { (log.item[$0], $0) < (log.item[$1], $1) }
            for r in rows {
                let time = log.timestamp?[r] ?? 0
                if it.count > s[u], it[it.count - 1] == log.item[r] {
                    w[w.count - 1] += log.weight[r]
                    t[t.count - 1] = max(t[t.count - 1], time)
                } else {
                    it.append(log.item[r])
                    w.append(log.weight[r])
                    t.append(time)
                }
            }
            s.append(it.count)
        }
        start = s
        item = it
        weight = w
        time = t
    }

    init(users: Int, items: Int, start: [Int], item: [Int32], weight: [Double], time: [Double]) {
        self.users = users
        self.items = items
        self.start = start
        self.item = item
        self.weight = weight
        self.time = time
    }

    /// The users × items confidence matrix.
    package func confidenceMatrix(_ scaling: ConfidenceScaling) -> SparseMatrix {
        var rows = [Int32](repeating: 0, count: pairs)
        for u in 0..<users {
            for k in start[u]..<start[u + 1] { rows[k] = Int32(u) }
        }
        return SparseMatrix(rows: users, columns: items, rowIndex: rows, columnIndex: item, values: weight.map(scaling.confidence))
    }

    /// Each user's items, ascending.
    package func itemSets() -> [[Int32]] {
        (0..<users).map { Array(item[start[$0]..<start[$0 + 1]]) }
    }
}

/// How each user's pairs are split into train and test.
package enum HoldoutMode: String, Sendable, CaseIterable {
    /// The user's latest pairs (by their last timestamp; ties by item index) go to test.
    case time
    /// A seeded random choice of the user's pairs goes to test.
    case random
}

/// A per-user holdout: of a user with n ≥ 2 pairs, `min(n − 1, max(1, round(f·n)))` pairs go to
/// test, so every user keeps at least one training pair; a user with one pair is all train.
package enum Holdout {
    /// Splits `h` into train and test histories over the same users and items.
    package static func split(
        _ h: UserHistories, mode: HoldoutMode, fraction: Double, seed: UInt64
    ) throws(InteractionError) -> (
        train: UserHistories, test: UserHistories
    ) {
        guard fraction > 0, fraction < 1 else { throw InteractionError(.unusable, line: nil, "the test fraction must be in (0, 1), got \(fraction)") }
        var rng = SplitMix64(seed: seed)
        var trainStart = [0]
        var testStart = [0]
        var trainK: [Int] = []
        var testK: [Int] = []
        for u in 0..<h.users {
            let pairs = Array(h.start[u]..<h.start[u + 1])
            let n = pairs.count
            let t = n < 2 ? 0 : min(n - 1, max(1, Int((fraction * Double(n)).rounded())))
            var ordered: [Int]
            switch mode {
            case .time: ordered = pairs.sorted { (h.time[$0], h.item[$0]) < (h.time[$1], h.item[$1]) }
            case .random: ordered = pairs.shuffled(using: &rng)
            }
            trainK += ordered[0..<(n - t)].sorted()
            testK += ordered[(n - t)...].sorted()
            trainStart.append(trainK.count)
            testStart.append(testK.count)
        }
        func pick(_ k: [Int], _ s: [Int]) -> UserHistories {
            UserHistories(users: h.users, items: h.items, start: s, item: k.map { h.item[$0] }, weight: k.map { h.weight[$0] }, time: k.map { h.time[$0] })
        }
        return (pick(trainK, trainStart), pick(testK, testStart))
    }

    /// The test items of a separate test log, mapped onto the training log's users and items. Rows
    /// whose user or item never appears in training cannot be scored and are dropped; the second
    /// value counts them. The first value holds each training user's test items, ascending, distinct.
    package static func mapTest(_ test: InteractionLog, onto train: InteractionLog) -> ([[Int32]], Int) {
        var sets = [Set<Int32>](repeating: [], count: train.users.count)
        var dropped = 0
        let userMap = test.users.names.map { train.users.lookup($0) }
        let itemMap = test.items.names.map { train.items.lookup($0) }
        for r in 0..<test.count {
            guard let u = userMap[Int(test.user[r])], let i = itemMap[Int(test.item[r])] else {
                dropped += 1
                continue
            }
            sets[Int(u)].insert(i)
        }
        return (sets.map { $0.sorted() }, dropped)
    }

    /// Refuses data nothing can be learnt from: no rows, or a single user.
    package static func checkUsable(_ log: InteractionLog) throws(InteractionError) {
        if log.count == 0 { throw InteractionError(.empty, line: nil, "no interactions: the file has no data rows") }
        if log.users.count < 2 {
            throw InteractionError(.singleUser, line: nil, "only one user (\(log.users.names.first ?? "")): collaborative filtering needs at least two")
        }
    }
}
