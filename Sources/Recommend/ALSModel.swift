/// An item and its score, as recommendations and similar items are returned (best first).
package struct ScoredItem: Sendable, Equatable {
    /// The item's index in the model.
    package let item: Int
    /// Its score: x_uᵀy_i for a user, cosine similarity for similar items.
    package let score: Float
}

/// A fitted model: names and factors (row-major Float32), ready to serve and to store.
package struct ALSModel: Sendable {
    /// Factors per row.
    package let factors: Int
    /// The user of each user row.
    package let userIDs: [String]
    /// The item of each item row.
    package let itemIDs: [String]
    /// `userIDs.count × factors`, row-major.
    package let userFactors: [Float]
    /// `itemIDs.count × factors`, row-major.
    package let itemFactors: [Float]
    private let userIndex: [String: Int]
    private let itemIndex: [String: Int]

    /// A model from stored or fitted factors; the sizes must agree with the names.
    package init(factors: Int, userIDs: [String], itemIDs: [String], userFactors: [Float], itemFactors: [Float]) {
        precondition(factors > 0 && userFactors.count == userIDs.count * factors && itemFactors.count == itemIDs.count * factors)
        self.factors = factors
        self.userIDs = userIDs
        self.itemIDs = itemIDs
        self.userFactors = userFactors
        self.itemFactors = itemFactors
        userIndex = Dictionary(userIDs.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        itemIndex = Dictionary(itemIDs.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The row of user `id`, if the model knows it.
    package func user(_ id: String) -> Int? { userIndex[id] }
    /// The row of item `id`, if the model knows it.
    package func item(_ id: String) -> Int? { itemIndex[id] }

    /// x_uᵀy_i.
    package func score(user: Int, item: Int) -> Float {
        userFactors.withUnsafeBufferPointer { x in
            itemFactors.withUnsafeBufferPointer { y in
                guard let xp = x.baseAddress, let yp = y.baseAddress else { return 0 }
                return Kernels.dot(xp + user * factors, yp + item * factors, factors)
            }
        }
    }

    /// The `n` best-scored items for `user` (ties: lower index first), leaving out `exclude`
    /// (typically what the user has already watched).
    ///
    /// Serving calls this per request over every item (20,000 × 64 factors in the goal), so
    /// a short `exclude` is not looked up per item: the best `n + exclude.count` of all items are
    /// kept and the excluded left out at the end, which gives the same `n` (ties included).
    package func recommend(user: Int, n: Int, exclude: Set<Int> = []) -> [ScoredItem] {
        let filterAtEnd = exclude.count <= Self.excludeAtEnd
        var top = TopK(k: filterAtEnd ? n + exclude.count : n)
        userFactors.withUnsafeBufferPointer { x in
            itemFactors.withUnsafeBufferPointer { y in
                guard let xp = x.baseAddress, let yp = y.baseAddress else { return }
                let xu = xp + user * factors
                if filterAtEnd {
                    for i in 0..<itemIDs.count { top.offer(i, Kernels.dot(xu, yp + i * factors, factors)) }
                } else {
                    for i in 0..<itemIDs.count where !exclude.contains(i) {
                        top.offer(i, Kernels.dot(xu, yp + i * factors, factors))
                    }
                }
            }
        }
        return filterAtEnd ? Array(top.sorted().lazy.filter { !exclude.contains($0.item) }.prefix(n)) : top.sorted()
    }

    /// Up to this many excluded items are left out after the scoring (see `recommend`).
    static let excludeAtEnd = 256

    /// The `n` items most like `item` by cosine of their factors, the item itself left out.
    package func similarItems(to item: Int, n: Int) -> [ScoredItem] {
        var top = TopK(k: n)
        itemFactors.withUnsafeBufferPointer { y in
            guard let yp = y.baseAddress else { return }
            let q = yp + item * factors
            let qn = Kernels.dot(q, q, factors).squareRoot()
            guard qn > 0 else { return }
            for i in 0..<itemIDs.count where i != item {
                let yi = yp + i * factors
                let norm = Kernels.dot(yi, yi, factors).squareRoot()
                if norm > 0 { top.offer(i, Kernels.dot(q, yi, factors) / (qn * norm)) }
            }
        }
        return top.sorted()
    }
}

/// The k best (item, score) offered so far; ties keep the lower item index. Insertion into a
/// short sorted array: k is small (10 for evaluation, tens for serving).
struct TopK {
    let k: Int
    private(set) var items: [Int] = []
    private(set) var scores: [Float] = []

    init(k: Int) {
        self.k = max(0, k)
        items.reserveCapacity(self.k + 1)
        scores.reserveCapacity(self.k + 1)
    }

    /// The score an item must beat to enter.
    var threshold: Float { items.count < k ? -.infinity : scores[k - 1] }

    mutating func offer(_ item: Int, _ score: Float) {
        guard k > 0, score > threshold || (items.count < k && score == threshold) else { return }
        var pos = scores.count
        while pos > 0 && (scores[pos - 1] < score || (scores[pos - 1] == score && items[pos - 1] > item)) { pos -= 1 }
        scores.insert(score, at: pos)
        items.insert(item, at: pos)
        if items.count > k {
            scores.removeLast()
            items.removeLast()
        }
    }

    func sorted() -> [ScoredItem] { zip(items, scores).map { ScoredItem(item: $0, score: $1) } }
}
