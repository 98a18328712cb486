import ArgusTestSupport
import Ratings
import Testing

/// BoxSet (a roaring bitmap) against `Set<UInt32>` as the brute-force reference, on seeded random sets.
@Suite struct BoxSetTests {
    static let cases: [UInt64] = (0..<150).map { 0xB0C5_0000 + UInt64($0) }

    /// A random set's values (with repeats, in no order): empty, dense runs, sparse values up to UInt32.max,
    /// a dense bitset-like block, small scattered values, or a mix, so every container kind and edge occurs.
    static func randomValues(_ rng: inout SplitMix64) -> [UInt32] {
        func run(_ rng: inout SplitMix64) -> [UInt32] {
            let start = UInt32(truncatingIfNeeded: rng.next() % 300_000)
            let length = UInt32(1 + rng.next() % 70_000)
            return Array(start..<(start + length))
        }
        switch rng.next() % 7 {
        case 0: return []
        case 1: return run(&rng) + run(&rng)
        case 2:
            return (0..<(1 + rng.next() % 300)).map { _ in UInt32(truncatingIfNeeded: rng.next()) } + [0, .max, .max - 1]
        case 3:
            // More than 4096 values in one 65536 block: a bitset container.
            let base = UInt32(rng.next() % 8) << 16
            return (0..<(5_000 + rng.next() % 20_000)).map { _ in base + UInt32(rng.next() % 65_536) }
        case 4: return (0..<(rng.next() % 2_000)).map { _ in UInt32(rng.next() % 200_000) }
        case 5: return [UInt32(rng.next() % 4)]
        default:
            var values = run(&rng)
            values += (0..<(rng.next() % 3_000)).map { _ in UInt32(rng.next() % 400_000) }
            values += (0..<(rng.next() % 50)).map { _ in .max - UInt32(rng.next() % 100_000) }
            return values
        }
    }

    @Test func matchesTheReference() {
        for seed in Self.cases.prefix(100) {
            var rng = SplitMix64(seed: seed)
            let a = Self.randomValues(&rng)
            let b = Self.randomValues(&rng)
            let refA = Set(a)
            let refB = Set(b)
            let setA = BoxSet(a)
            let setB = BoxSet(b)
            #expect(setA.count == refA.count, "seed \(seed)")
            #expect(setA.isEmpty == refA.isEmpty, "seed \(seed)")
            #expect(Array(setA) == refA.sorted(), "seed \(seed)")
            // Members, their neighbours, and random probes.
            var probes = a.prefix(500).flatMap { [$0, $0 &+ 1, $0 &- 1] }
            probes += (0..<200).map { _ in UInt32(truncatingIfNeeded: rng.next()) } + [0, .max]
            #expect(probes.allSatisfy { setA.contains($0) == refA.contains($0) }, "seed \(seed)")
            let refUnion = refA.union(refB)
            #expect(Array(setA.union(setB)) == refUnion.sorted(), "seed \(seed)")
            #expect(setA.union(setB).count == refUnion.count, "seed \(seed)")
            var formed = setA
            formed.formUnion(setB)
            #expect(formed == BoxSet(refUnion), "seed \(seed)")
            #expect(setA == BoxSet(refA), "seed \(seed): formUnion left the original alone")
            #expect(setA.intersectionCount(setB) == refA.intersection(refB).count, "seed \(seed)")
            #expect(setA.intersectionCount(setA) == refA.count, "seed \(seed)")
        }
    }

    @Test func manyWayUnion() {
        for seed in Self.cases.prefix(40) {
            var rng = SplitMix64(seed: seed ^ 0x0123)
            let parts = (0..<Int(rng.next() % 31)).map { _ in Self.randomValues(&rng) }
            let reference = parts.reduce(into: Set<UInt32>()) { $0.formUnion($1) }
            let union = BoxSet.union(parts.map { BoxSet($0) })
            #expect(union.count == reference.count, "seed \(seed)")
            #expect(Array(union) == reference.sorted(), "seed \(seed)")
        }
        #expect(BoxSet.union([]).isEmpty)
        #expect(BoxSet.union([[3, 1]]) == [1, 3])
    }

    @Test func insertAndCopyOnWrite() {
        var rng = SplitMix64(seed: 0xC0C0)
        var set: BoxSet = []
        var reference = Set<UInt32>()
        var snapshots: [(BoxSet, [UInt32])] = []
        for i in 0..<3_000 {
            let v = rng.next() % 2 == 0 ? UInt32(rng.next() % 70_000) : UInt32(truncatingIfNeeded: rng.next())
            set.insert(v)
            reference.insert(v)
            if i % 500 == 0 { snapshots.append((set, reference.sorted())) }
        }
        #expect(Array(set) == reference.sorted())
        for (snapshot, values) in snapshots { #expect(Array(snapshot) == values) }
        // Iterating while mutating: the iterator keeps the bitmap it started on.
        var iterator = set.makeIterator()
        set.insert(.max)
        var seen: [UInt32] = []
        while let v = iterator.next() { seen.append(v) }
        #expect(seen == reference.sorted())
    }

    @Test func equalityAndHashAgreeAcrossRepresentations() throws {
        for seed in Self.cases.prefix(60) {
            var rng = SplitMix64(seed: seed ^ 0x4A5)
            let values = Self.randomValues(&rng)
            let built = BoxSet(values)
            var inserted = BoxSet()
            for v in values.reversed() { inserted.insert(v) }
            // Read back from run-optimized bytes: the same set, perhaps in other containers.
            let decoded = try BoxSet(serialized: built.serialized())
            for other in [inserted, decoded, BoxSet(Set(values))] {
                #expect(other == built, "seed \(seed)")
                #expect(other.hashValue == built.hashValue, "seed \(seed)")
            }
            let extra = UInt32(truncatingIfNeeded: rng.next())
            if !Set(values).contains(extra) {
                var more = built
                more.insert(extra)
                #expect(more != built && more != decoded, "seed \(seed)")
            }
        }
        #expect(BoxSet() == [] && BoxSet().hashValue == BoxSet([]).hashValue)
        #expect(Set([BoxSet([1, 2]), BoxSet([2, 1]), BoxSet([1])]).count == 2)
    }

    @Test func serializedRoundTrip() throws {
        for seed in Self.cases {
            var rng = SplitMix64(seed: seed ^ 0x5E7)
            let reference = Set(Self.randomValues(&rng))
            let set = BoxSet(reference)
            let bytes = set.serialized()
            let back = try BoxSet(serialized: bytes)
            #expect(back == set, "seed \(seed)")
            #expect(Array(back) == reference.sorted(), "seed \(seed)")
            #expect(back.serialized() == bytes, "seed \(seed)")
            #expect(try BoxSet(serialized: bytes[...]) == set, "seed \(seed): any collection of bytes")
        }
        // Runs are compressed: 100,000 consecutive boxes take a few bytes.
        #expect(BoxSet(0..<100_000).serialized().count < 64)
        #expect(try BoxSet(serialized: BoxSet().serialized()).isEmpty)
    }

    /// The format from its specification: a portable bitmap made by hand reads as the values it names.
    @Test func readsTheSpecifiedFormat() throws {
        // No runs: cookie 12346, 1 container; key 1, 2 values; offset 16; values 2, 7.
        let bytes = le32(12346) + le32(1) + le16(1) + le16(1) + le32(16) + le16(2) + le16(7)
        #expect(try BoxSet(serialized: bytes) == [65_538, 65_543])
        // Runs: cookie 12347 | (1 − 1) << 16, run flags 0b1; key 0, 11 values; runs [0, 3], [10, 16].
        let runs = le32(12347) + [1] + le16(0) + le16(10) + le16(2) + le16(0) + le16(3) + le16(10) + le16(6)
        #expect(Array(try BoxSet(serialized: runs)) == Array(0...3) + Array(10...16))
    }

    @Test func refusesBadBytesWithATypedError() {
        #expect(throws: BoxSet.DecodeError.truncated) { try BoxSet(serialized: []) }
        #expect(throws: BoxSet.DecodeError.truncated) { try BoxSet(serialized: [0x3A, 0x30]) }
        #expect(throws: BoxSet.DecodeError.unknownCookie) { try BoxSet(serialized: [0, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: BoxSet.DecodeError.unknownCookie) { try BoxSet(serialized: Array("garbage!".utf8)) }
        let noRuns = le32(12346)
        let malformed: [[UInt8]] = [
            noRuns + le32(65_537),  // more containers than keys
            noRuns + le32(2) + le16(1) + le16(0) + le16(1) + le16(0) + le32(24) + le32(26) + le16(0) + le16(0),  // keys repeat
            noRuns + le32(1) + le16(0) + le16(1) + le32(16) + le16(5) + le16(3),  // values out of order
            noRuns + le32(1) + le16(0) + le16(1) + le32(16) + le16(5) + le16(5),  // a value twice
            noRuns + le32(1) + le16(0) + le16(1) + le32(17) + le16(3) + le16(5),  // offset points elsewhere
            noRuns + le32(1) + le16(0) + le16(4_999) + le32(16) + [UInt8](repeating: 0, count: 8_192),  // bitset count
            le32(12347) + [1] + le16(0) + le16(5) + le16(2) + le16(0) + le16(3) + le16(2) + le16(1),  // runs overlap
            le32(12347) + [1] + le16(0) + le16(5) + le16(2) + le16(0) + le16(2) + le16(3) + le16(1),  // runs touch
            le32(12347) + [1] + le16(0) + le16(0) + le16(0),  // no runs
            le32(12347) + [1] + le16(0) + le16(9) + le16(1) + le16(65_530) + le16(9),  // run past 65535
            le32(12347) + [1] + le16(0) + le16(9) + le16(1) + le16(0) + le16(3),  // count disagrees
        ]
        for (i, bytes) in malformed.enumerated() {
            #expect(throws: BoxSet.DecodeError.malformed, "case \(i)") { try BoxSet(serialized: bytes) }
        }
        // Every strict prefix of valid bytes is truncated; a byte more is trailing.
        var rng = SplitMix64(seed: 0x7A11)
        for _ in 0..<12 {
            let bytes = BoxSet(Self.randomValues(&rng)).serialized()
            for length in Set((0..<40).map { _ in Int(rng.next() % UInt64(bytes.count)) } + [0, bytes.count - 1]) {
                #expect(throws: BoxSet.DecodeError.truncated) { try BoxSet(serialized: bytes.prefix(length)) }
            }
            #expect(throws: BoxSet.DecodeError.trailingBytes) { try BoxSet(serialized: bytes + [0]) }
        }
    }

    /// Random bytes, and valid bytes with bytes changed: a typed error or a set that behaves; never a crash.
    @Test func survivesGarbage() {
        var refused = 0
        for seed in Self.cases {
            var rng = SplitMix64(seed: seed ^ 0x6A6)
            let noise = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Noise behind a valid cookie gets past the first check.
            let cookie = rng.next() % 2 == 0 ? le32(12346) : le32(12347 | UInt32(rng.next() % 4) << 16)
            var mutated = BoxSet(Self.randomValues(&rng)).serialized()
            for _ in 0..<(1 + rng.next() % 4) {
                mutated[Int(rng.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            for bytes in [noise, cookie + noise, mutated] {
                do {
                    let set = try BoxSet(serialized: bytes)
                    #expect(Array(set).count == set.count, "seed \(seed)")
                    #expect(try BoxSet(serialized: set.serialized()) == set, "seed \(seed)")
                } catch {
                    refused += 1
                }
            }
        }
        #expect(refused > Self.cases.count * 2)
    }

    @Test func literalsAndDescription() {
        let set: BoxSet = [5, 1, 5, .max]
        #expect(Array(set) == [1, 5, .max] && set.count == 3 && !set.isEmpty)
        #expect(set.description == "BoxSet(count: 3, [1, 5, 4294967295])")
        #expect(BoxSet().isEmpty && BoxSet().count == 0 && Array(BoxSet()).isEmpty)
    }

    func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    func le32(_ v: UInt32) -> [UInt8] { le16(UInt16(v & 0xFFFF)) + le16(UInt16(v >> 16)) }
}
