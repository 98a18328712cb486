import ArgusTestSupport
import Synchronization
import Testing

@testable import ArgusSupport

@Suite("PendingBatch")
struct PendingBatchTests {
    struct Item: Equatable, Sendable {
        var key: Int
        var value: Int
        var weight: Int = 1
    }

    @Test("bounded: past the limit the oldest are dropped and counted")
    func bounded() {
        var b = PendingBatch<Int>(limit: 3)
        #expect(b.append(1) == 0)
        #expect(b.append(contentsOf: [2, 3]) == 0)
        #expect(b.append(4) == 1)
        #expect(b.take() == [2, 3, 4])
        #expect(b.isEmpty && b.weight == 0)
    }

    @Test("weights: a job-wide update counts one unit per box")
    func weights() {
        var b = PendingBatch<Item>(limit: 10, weight: { $0.weight })
        b.append(Item(key: 0, value: 0, weight: 6))
        b.append(Item(key: 1, value: 1, weight: 3))
        #expect(b.weight == 9)
        #expect(b.append(Item(key: 2, value: 2, weight: 4)) == 6)
        #expect(b.take().map(\.value) == [1, 2])
        // An entry heavier than the whole limit is dropped at once.
        #expect(b.append(Item(key: 3, value: 3, weight: 11)) == 11)
        #expect(b.isEmpty)
    }

    @Test("coalescing: the latest change of a key replaces the pending one in place")
    func coalescing() {
        var b = PendingBatch<Item>(limit: 100, key: { String($0.key) })
        b.append(Item(key: 1, value: 10))
        b.append(Item(key: 2, value: 20))
        b.append(Item(key: 1, value: 11))
        #expect(b.count == 2)
        #expect(b.take() == [Item(key: 1, value: 11), Item(key: 2, value: 20)])
    }

    @Test("putBack keeps newer changes of the same key and the order of the rest")
    func putBack() {
        var b = PendingBatch<Item>(limit: 100, key: { String($0.key) })
        b.append(contentsOf: [Item(key: 1, value: 1), Item(key: 2, value: 2)])
        let failed = b.take()
        b.append(Item(key: 2, value: 3))  // arrived while the write was failing
        b.putBack(failed)
        #expect(b.take() == [Item(key: 1, value: 1), Item(key: 2, value: 3)])

        var o = PendingBatch<Int>(limit: 3)
        o.append(contentsOf: [1, 2])
        let f = o.take()
        o.append(contentsOf: [3, 4])
        #expect(o.putBack(f) == 1)  // over the bound again: the oldest goes
        #expect(o.take() == [2, 3, 4])
    }

    /// A brute-force model: an array, replace in place by key, drop from the front.
    struct Model {
        let limit: Int
        let keyed: Bool
        var items: [Item] = []
        var weight: Int { items.reduce(0) { $0 + $1.weight } }
        mutating func append(_ e: Item) -> Int {
            if keyed, let i = items.firstIndex(where: { $0.key == e.key }) { items[i] = e } else { items.append(e) }
            var dropped = 0
            while weight > limit, !items.isEmpty { dropped += items.removeFirst().weight }
            return dropped
        }
        mutating func take() -> [Item] { defer { items = [] }; return items }
        mutating func putBack(_ batch: [Item]) -> Int {
            let newer = take()
            var dropped = 0
            for e in batch where !(keyed && newer.contains { $0.key == e.key }) { dropped += append(e) }
            for e in newer { dropped += append(e) }
            return dropped
        }
    }

    @Test("matches the brute-force model over random operations", arguments: [false, true])
    func matchesModel(keyed: Bool) {
        for seed in 0..<200 as Range<UInt64> {
            var rng = SplitMix64(seed: seed)
            let limit = Int.random(in: 1...40, using: &rng)
            var batch =
                keyed
                ? PendingBatch<Item>(limit: limit, weight: { $0.weight }, key: { (e: Item) -> String in String(e.key) })
                : PendingBatch<Item>(limit: limit, weight: { $0.weight })
            var model = Model(limit: limit, keyed: keyed)
            var inFlight: [Item] = []
            for step in 0..<300 {
                let e = Item(key: Int.random(in: 0..<12, using: &rng), value: step, weight: Int.random(in: 1...5, using: &rng))
                switch Int.random(in: 0..<10, using: &rng) {
                case 0:
                    let t = batch.take()
                    #expect(t == model.take(), "seed \(seed) step \(step)")
                    inFlight = t
                case 1:
                    #expect(batch.putBack(inFlight) == model.putBack(inFlight), "seed \(seed) step \(step)")
                    inFlight = []
                default:
                    #expect(batch.append(e) == model.append(e), "seed \(seed) step \(step)")
                }
                #expect(batch.weight == model.weight && batch.count == model.items.count, "seed \(seed) step \(step)")
                #expect(batch.weight <= limit)
            }
            #expect(batch.take() == model.take(), "seed \(seed)")
        }
    }

    @Test("PendingWrites reports drops to its owner")
    func pendingWritesReportsDrops() {
        let seen = Counted()
        let w = PendingWrites<Int>(limit: 2, onDrop: { n in seen.add(n) })
        w.submit(contentsOf: [1, 2, 3, 4])
        w.putBack([0])
        #expect(seen.total == 3)
        #expect(w.take() == [3, 4])
    }

    final class Counted: Sendable {
        private let n = Mutex(0)
        func add(_ k: Int) { n.withLock { $0 += k } }
        var total: Int { n.withLock { $0 } }
    }
}
