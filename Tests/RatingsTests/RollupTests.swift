import ArgusTestSupport
import Ratings
import Testing

/// Measures from rollups equal measures from the raw per-box credit.
@Suite struct RollupTests {
    static func randomCredits(_ rng: inout SplitMix64, boxes: Int, minutes: Range<Int64>) -> [BoxCredits] {
        let channels = ["a", "b", "c", "d"]
        return (0..<boxes).map { box in
            var credits: [MinuteCredit] = []
            var channel = channels[Int(rng.next() % 4)]
            for minute in minutes where rng.next() % 3 != 0 {
                if rng.next() % 4 == 0 { channel = channels[Int(rng.next() % 4)] }
                let mode: ViewingMode = rng.next() % 6 == 0 ? .timeshift : .live
                credits.append(MinuteCredit(minute: minute, channel: channel, mode: mode))
            }
            return BoxCredits(box: BoxIndex(box), credits: credits)
        }
    }

    @Test func rollupsGiveTheRawMeasures() throws {
        for seed in (0..<200).map({ 0xB0B_0000 + UInt64($0) }) {
            var rng = SplitMix64(seed: seed)
            let bucket = Int64([3, 4, 5, 10, 60][Int(rng.next() % 5)])
            let align = Int64(rng.next() % 7)
            let first = Int64(1_000 + rng.next() % 50)
            let all = first..<(first + 90)
            let boxes = Self.randomCredits(&rng, boxes: 1 + Int(rng.next() % 12), minutes: all)
            let modes: Set<ViewingMode> = rng.next() % 2 == 0 ? [.live] : Set(ViewingMode.allCases)
            // Built in two halves (two nodes), merged.
            let half = boxes.count / 2
            var rollup = try Rollup.build(
                Array(boxes[..<half]), bucketMinutes: bucket, alignMinutes: align, reachModes: modes)
            try rollup.merge(
                try Rollup.build(Array(boxes[half...]), bucketMinutes: bucket, alignMinutes: align, reachModes: modes))
            // A selection of whole buckets, some adjacent, some not.
            let buckets = (rollup.bucket(of: all.lowerBound)...rollup.bucket(of: all.upperBound)).filter { _ in
                rng.next() % 3 != 0
            }
            let selection = MinuteSelection(buckets.map { rollup.minutes(ofBucket: $0) })
            let universe = boxes.count + Int(rng.next() % 5)
            let raw = Tallies.fromCredits(boxes, selection: selection, modes: modes, universe: universe)
            let rolled = try rollup.tallies(selection: selection, modes: modes, universe: universe)
            #expect(raw == rolled, "seed \(seed)")
            #expect(Measures.compute(raw) == Measures.compute(rolled), "seed \(seed)")
        }
    }

    @Test func refusesWhatItCannotAnswer() throws {
        #expect(throws: Rollup.Failure.bucketTooShort) { try Rollup(bucketMinutes: 2) }
        let rollup = try Rollup(bucketMinutes: 60, reachModes: [.live])
        #expect(throws: Rollup.Failure.selectionNotAlignedToBuckets) {
            try rollup.tallies(selection: MinuteSelection(0..<30), modes: [.live], universe: 1)
        }
        #expect(throws: Rollup.Failure.modesDifferFromReachModes) {
            try rollup.tallies(selection: MinuteSelection(0..<60), modes: [.live, .catchup], universe: 1)
        }
        var other = try Rollup(bucketMinutes: 1440)
        #expect(throws: Rollup.Failure.shapeMismatch) { try other.merge(rollup) }
    }

    @Test func reachAcrossABucketEdge() throws {
        // Minutes 58, 59 | 60: a 3-minute run only across the edge of two hour buckets.
        let box = BoxCredits(box: 7, credits: (58...60).map { MinuteCredit(minute: $0, channel: "a", mode: .live) })
        let rollup = try Rollup.build([box], bucketMinutes: 60)
        let both = try rollup.tallies(
            selection: MinuteSelection(0..<120), modes: Set(ViewingMode.allCases), universe: 10)
        #expect(both.channels["a"] == Tallies.Channel(boxMinutes: 3, reach1: 1, reach3: 1))
        let first = try rollup.tallies(
            selection: MinuteSelection(0..<60), modes: Set(ViewingMode.allCases), universe: 10)
        #expect(first.channels["a"] == Tallies.Channel(boxMinutes: 2, reach1: 1, reach3: 0))
    }
}

/// Measures on hand-made credit.
@Suite struct MeasuresTests {
    @Test func handMade() throws {
        // Ten minutes, universe 4: box 0 watches a for all ten, box 1 watches a 2 minutes then b 3 (not
        // consecutive for a twice), box 2 watches b at minutes 0, 2, 4 (never 3 in a row), box 3 nothing.
        let a = (0..<10).map { MinuteCredit(minute: $0, channel: "a", mode: .live) }
        let b1 =
            [0, 1].map { MinuteCredit(minute: $0, channel: "a", mode: .live) }
            + [5, 6, 7].map { MinuteCredit(minute: $0, channel: "b", mode: .catchup) }
        let b2 = [0, 2, 4].map { MinuteCredit(minute: Int64($0), channel: "b", mode: .live) }
        let boxes = [BoxCredits(box: 0, credits: a), BoxCredits(box: 1, credits: b1), BoxCredits(box: 2, credits: b2)]
        let t = Tallies.fromCredits(boxes, selection: MinuteSelection(0..<10), universe: 4)
        let m = Measures.compute(t)
        #expect(m.map(\.channel) == ["a", "b"])
        #expect(m[0].boxMinutes == 12 && m[0].amr == 1.2 && m[0].rating == 0.3 && m[0].share == 12.0 / 18)
        #expect(m[0].reach1 == 2 && m[0].reach3 == 1 && m[0].atvMinutes == 6)
        #expect(m[1].boxMinutes == 6 && m[1].reach1 == 2 && m[1].reach3 == 1 && m[1].atvMinutes == 3)
        // Live only: b loses box 1's catch-up minutes.
        let live = Measures.compute(
            Tallies.fromCredits(boxes, selection: MinuteSelection(0..<10), modes: [.live], universe: 4))
        #expect(live[1].boxMinutes == 3 && live[1].reach3 == 0 && live[1].share == 3.0 / 15)
        // A selection that splits the run: minutes 0…4 and 6…9.
        let split = Tallies.fromCredits(boxes, selection: MinuteSelection([0..<5, 6..<10]), universe: 4)
        #expect(split.minutes == 9 && split.channels["b"]?.reach3 == 0 && split.channels["a"]?.boxMinutes == 11)
    }

    @Test func emptyUniverse() {
        let m = Measures.compute(Tallies(minutes: 0, universe: 0, allBoxMinutes: 0, channels: ["a": .init()]))
        #expect(m[0].rating == 0 && m[0].ratingInterval == nil && m[0].share == nil && m[0].atvMinutes == nil)
    }

    @Test func selection() {
        let s = MinuteSelection([10..<20, 0..<5, 5..<7, 19..<25, 30..<30])
        #expect(s.ranges == [0..<7, 10..<25] && s.count == 22)
        #expect(s.contains(6) && !s.contains(7) && s.contains(24) && !s.contains(25) && !s.contains(-1))
    }
}
