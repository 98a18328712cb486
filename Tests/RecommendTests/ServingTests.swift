import Testing

@testable import Recommend

@Suite("Serving top-N")
struct ServingTests {
    /// `recommend` against a brute force (score every item, sort by score then index, skip the
    /// excluded): random models with scores quantised so that ties happen, short and long
    /// exclusion lists (both code paths), n from 0 past the item count.
    @Test(arguments: 1...40)
    func recommendIsTheBruteForceTopN(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let items = Int(rng.next() % 600) + 1, users = 3, k = Int(rng.next() % 9) + 1
        // Factors of a few levels only: many equal scores.
        func level() -> Float { Float(Int(rng.next() % 5) - 2) * 0.5 }
        let model = ALSModel(
            factors: k, userIDs: (0..<users).map { "u\($0)" }, itemIDs: (0..<items).map { "i\($0)" },
            userFactors: (0..<(users * k)).map { _ in level() }, itemFactors: (0..<(items * k)).map { _ in level() })
        let long = seed % 4 == 0
        var exclude = Set<Int>()
        for _ in 0..<(long ? 300 : Int(rng.next() % 20)) { exclude.insert(Int(rng.next() % UInt64(items + 5))) }
        let n = Int(rng.next() % UInt64(items + 3))
        for u in 0..<users {
            var all: [ScoredItem] = []
            for i in 0..<items where !exclude.contains(i) { all.append(ScoredItem(item: i, score: model.score(user: u, item: i))) }
            all.sort { a, b in a.score > b.score || (a.score == b.score && a.item < b.item) }
            let want = all.prefix(n)
            #expect(model.recommend(user: u, n: n, exclude: exclude) == Array(want), "seed \(seed), user \(u), n \(n)")
        }
    }
}
