import ArgusTestSupport
import Ratings
import Testing

/// Answers from `DenseDay`s (what queries read) equal `Rollup.tallies` and the raw credit on the same boxes.
@Suite struct DenseDayTests {
    @Test func denseDaysGiveTheRollupsAnswers() throws {
        for seed in (0..<60).map({ 0xDE_0000 + UInt64($0) }) {
            var rng = SplitMix64(seed: seed)
            let bucket = Int64([3, 5, 60, 240][Int(rng.next() % 4)])
            let day0 = Int64(20_000 + rng.next() % 10)
            // Three days; viewing around the two midnights, where runs cross days.
            var boxes: [BoxCredits] = []
            for part in 0..<3 {
                let first = (day0 + Int64(part)) * 1440 - 40 + Int64(rng.next() % 30)
                boxes += RollupTests.randomCredits(&rng, boxes: 1 + Int(rng.next() % 6), minutes: first..<(first + 80)).map {
                    BoxCredits(box: $0.box + BoxIndex(part * 100), credits: $0.credits)
                }
            }
            let rollup = try Rollup.build(boxes, bucketMinutes: bucket)
            // Some spans made at load (as the hub does for dayparts), so both paths are taken.
            let perDay = Int(1440 / bucket)
            let spans = [0..<(perDay / 4), (perDay / 3)..<(perDay / 2), (perDay - 2)..<perDay]
            let days = try (day0 - 1...day0 + 3).map { try DenseDay(rollup, day: $0, spans: spans) }
            // Whole buckets over the three days, some adjacent (also across midnight), some not.
            let all = (day0 * 1440 - 60)..<((day0 + 3) * 1440)
            let buckets = (rollup.bucket(of: all.lowerBound)..<rollup.bucket(of: all.upperBound)).filter { _ in rng.next() % 3 != 0 }
            var selection = MinuteSelection(buckets.map { rollup.minutes(ofBucket: $0) })
            if seed % 2 == 0 {
                // A daypart-like selection: the same spans on each day.
                selection = MinuteSelection(
                    (day0...day0 + 2).flatMap { d in
                        spans.map { (d * 1440 + Int64($0.lowerBound) * bucket)..<(d * 1440 + Int64($0.upperBound) * bucket) }
                    })
            }
            let universe = boxes.count + Int(rng.next() % 5)
            let modes = Set(ViewingMode.allCases)
            let expected = try rollup.tallies(selection: selection, modes: modes, universe: universe)
            let dense = try DenseDay.tallies(days, selection: selection, modes: modes, universe: universe, reachFor: nil)
            #expect(dense == expected, "seed \(seed)")
            #expect(dense == Tallies.fromCredits(boxes, selection: selection, modes: modes, universe: universe), "seed \(seed)")
            // Reach for some channels only: theirs are the same, the others' box-minutes too.
            let some: Set<String> = ["a", "c"]
            let partial = try DenseDay.tallies(days, selection: selection, modes: modes, universe: universe, reachFor: some)
            for (name, t) in expected.channels {
                #expect(partial.channels[name]?.boxMinutes == t.boxMinutes, "seed \(seed) \(name)")
                if some.contains(name) { #expect(partial.channels[name] == t, "seed \(seed) \(name)") }
            }
            // Box-minutes of one mode over any minutes (not whole buckets).
            let ragged = MinuteSelection([(day0 * 1440 - 17)..<(day0 * 1440 + 29), ((day0 + 1) * 1440 + 3)..<((day0 + 2) * 1440 + 1)])
            let live = DenseDay.audience(days, selection: ragged, modes: [.live])
            let raw = Tallies.fromCredits(boxes, selection: ragged, modes: [.live], universe: universe)
            #expect(live.all == raw.allBoxMinutes && live.channels == raw.channels.mapValues(\.boxMinutes), "seed \(seed)")
        }
    }

    @Test func refusesWhatItCannotAnswer() throws {
        #expect(throws: Rollup.Failure.selectionNotAlignedToBuckets) { try DenseDay(day: 1, bucketMinutes: 7) }
        let day = try DenseDay(day: 1)
        #expect(throws: Rollup.Failure.selectionNotAlignedToBuckets) {
            try DenseDay.reach([day], selection: MinuteSelection(1440..<1470), channels: ["a"])
        }
        #expect(throws: Rollup.Failure.modesDifferFromReachModes) {
            try DenseDay.tallies([day], selection: MinuteSelection(1440..<1500), modes: [.live], universe: 1, reachFor: ["a"])
        }
    }
}
