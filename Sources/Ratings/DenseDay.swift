/// One UTC day's rollup in the form queries read fast (docs/ratings-method.md, "Rollups"): per channel, each mode's
/// audience as prefix sums over the day's 1,440 minutes (a range's box-minutes are one subtraction), the reach sets
/// of each bucket with the runs touching its edges as sets (≥ 1 and ≥ 2 minutes at its start and end, so a run across
/// an edge is two intersections), and the whole day's unions, made once when the day is loaded.
///
/// Answers equal `Rollup.tallies` on the same boxes (property-tested); a query over 30 days ORs a few dozen sets per
/// channel, and computes reach only for the channels it returns.
public struct DenseDay: Sendable {
    public static let minutesPerDay: Int64 = 1440

    /// One bucket's boxes of one channel.
    public struct Bucket: Sendable, Hashable {
        public var reached: BoxSet
        public var run3: BoxSet
        /// Boxes whose run of credited minutes from the bucket's first minute is ≥ 1 / ≥ 2 minutes long.
        public var head1: BoxSet
        public var head2: BoxSet
        /// Boxes whose run ending at the bucket's last minute is ≥ 1 / ≥ 2 minutes long.
        public var tail1: BoxSet
        public var tail2: BoxSet

        public init(reached: BoxSet, run3: BoxSet, head1: BoxSet, head2: BoxSet, tail1: BoxSet, tail2: BoxSet) {
            self.reached = reached
            self.run3 = run3
            self.head1 = head1
            self.head2 = head2
            self.tail1 = tail1
            self.tail2 = tail2
        }

        /// Boxes with a run of ≥ 3 minutes across the edge from `self` to the next bucket: 2 + 1 or 1 + 2 (lengths are
        /// capped at 2).
        func across(to next: Bucket) -> BoxSet {
            tail2.intersection(next.head1).union(tail1.intersection(next.head2))
        }
    }

    public struct Channel: Sendable {
        /// Per mode, `prefix[i]` = credited box-minutes in the day's minutes `0..<i` (1,441 values), modulo 2³²:
        /// a difference taken with wrapping arithmetic is exact while a channel's day has fewer than 2³² box-minutes
        /// (about 3 million boxes watching it all day), and a cached day takes half the memory of `Int64`s.
        var prefix: [ViewingMode: [UInt32]] = [:]
        /// Per bucket of the day; nil when no box was credited the channel in it.
        var buckets: [Bucket?]
        /// The day's boxes with ≥ 1 credited minute, and with ≥ 3 consecutive minutes inside the day.
        var dayReached = BoxSet()
        var dayRun3 = BoxSet()
        /// Per bucket, the boxes with a ≥ 3-minute run across its edge with the next bucket of the day
        /// (made once at load, not per query).
        var acrossNext: [BoxSet]
        /// For each span of buckets made at load (e.g. a daypart's hours): its reach and its ≥ 3-minute
        /// runs inside the span, so a query over the span ORs one set per day instead of one per bucket.
        var spans: [Range<Int>: (reached: BoxSet, run3: BoxSet)] = [:]

        init(buckets: Int) {
            self.buckets = Array(repeating: nil, count: buckets)
            acrossNext = Array(repeating: BoxSet(), count: buckets)
        }

        /// Reach and ≥ 3-minute runs inside the buckets of `span` (edges between them included).
        func union(_ span: Range<Int>) -> (reached: BoxSet, run3: BoxSet) {
            var reached: [BoxSet] = []
            var run3: [BoxSet] = []
            for i in span {
                guard let bucket = buckets[i] else { continue }
                reached.append(bucket.reached)
                run3.append(bucket.run3)
                if i + 1 < span.upperBound { run3.append(acrossNext[i]) }
            }
            return (BoxSet.union(reached), BoxSet.union(run3))
        }

        func boxMinutes(_ mode: ViewingMode, _ lo: Int, _ hi: Int) -> Int64 {
            guard let p = prefix[mode] else { return 0 }
            return Int64(p[hi] &- p[lo])
        }
    }

    /// Days since 1970 (UTC).
    public let day: Int64
    public let bucketMinutes: Int64
    public private(set) var channels: [String: Channel] = [:]

    /// An empty day; `bucketMinutes` must divide a day and be at least 3 minutes.
    public init(day: Int64, bucketMinutes: Int64 = 60) throws(Rollup.Failure) {
        guard bucketMinutes >= 3 else { throw .bucketTooShort }
        guard Self.minutesPerDay % bucketMinutes == 0 else { throw .selectionNotAlignedToBuckets }
        self.day = day
        self.bucketMinutes = bucketMinutes
    }

    var bucketsPerDay: Int { Int(Self.minutesPerDay / bucketMinutes) }
    var firstMinute: Int64 { day * Self.minutesPerDay }

    /// Sets one mode's per-minute audience of `channel` (1,440 counts, minute 0 = midnight UTC).
    public mutating func setAudience(channel: String, mode: ViewingMode, counts: [Int32]) {
        var prefix = [UInt32](repeating: 0, count: Int(Self.minutesPerDay) + 1)
        for i in 0..<min(counts.count, Int(Self.minutesPerDay)) { prefix[i + 1] = prefix[i] &+ UInt32(clamping: counts[i]) }
        if counts.count < Int(Self.minutesPerDay) {
            for i in counts.count..<Int(Self.minutesPerDay) { prefix[i + 1] = prefix[i] }
        }
        let n = bucketsPerDay
        channels[channel, default: Channel(buckets: n)].prefix[mode] = prefix
    }

    /// Sets bucket `index` (0 = the one starting at midnight) of `channel`.
    public mutating func setBucket(channel: String, index: Int, _ bucket: Bucket) {
        let n = bucketsPerDay
        guard (0..<n).contains(index) else { return }
        channels[channel, default: Channel(buckets: n)].buckets[index] = bucket
    }

    /// Makes the whole-day unions, and those of `spans` (ranges of bucket indices, e.g. the hours
    /// of each daypart); call once every bucket is set.
    public mutating func finish(spans: [Range<Int>] = []) {
        let n = bucketsPerDay
        let wanted = spans.map { $0.clamped(to: 0..<n) }.filter { !$0.isEmpty && $0.count < n }
        for (name, var channel) in channels {
            for (i, bucket) in channel.buckets.enumerated() {
                guard let bucket, i + 1 < n, let next = channel.buckets[i + 1] else { continue }
                channel.acrossNext[i] = bucket.across(to: next)
            }
            let whole = channel.union(0..<n)
            channel.dayReached = whole.reached
            channel.dayRun3 = whole.run3
            for span in wanted { channel.spans[span] = channel.union(span) }
            channels[name] = channel
        }
    }

    /// The day of `rollup` (whose reach buckets must divide the day, aligned to midnight UTC).
    public init(_ rollup: Rollup, day: Int64, spans: [Range<Int>] = []) throws(Rollup.Failure) {
        guard rollup.alignMinutes == 0 else { throw .selectionNotAlignedToBuckets }
        try self.init(day: day, bucketMinutes: rollup.bucketMinutes)
        let start = day * Self.minutesPerDay
        var counts: [String: [ViewingMode: [Int32]]] = [:]
        for (key, n) in rollup.audience where key.minute >= start && key.minute < start + Self.minutesPerDay {
            counts[key.channel, default: [:]][key.mode, default: [Int32](repeating: 0, count: Int(Self.minutesPerDay))][Int(key.minute - start)] =
                Int32(clamping: n)
        }
        for (channel, modes) in counts { for (mode, c) in modes { setAudience(channel: channel, mode: mode, counts: c) } }
        let firstBucket = rollup.bucket(of: start)
        for (key, cell) in rollup.reach {
            let index = Int(key.bucket - firstBucket)
            guard (0..<bucketsPerDay).contains(index) else { continue }
            setBucket(
                channel: key.channel, index: index,
                Bucket(
                    reached: cell.reached, run3: cell.run3, head1: BoxSet(cell.head.keys), head2: BoxSet(cell.head.filter { $0.value >= 2 }.keys),
                    tail1: BoxSet(cell.tail.keys), tail2: BoxSet(cell.tail.filter { $0.value >= 2 }.keys)))
        }
        finish(spans: spans)
    }
}

extension DenseDay {
    /// The part of `selection` inside `day`, as ranges of the day's minute indices.
    static func local(_ selection: MinuteSelection, day: Int64) -> [Range<Int>] {
        let start = day * minutesPerDay, end = start + minutesPerDay
        return selection.ranges.compactMap { r in
            let lo = max(r.lowerBound, start), hi = min(r.upperBound, end)
            return lo < hi ? Int(lo - start)..<Int(hi - start) : nil
        }
    }

    /// Credited box-minutes per channel in `selection`, in `modes`, and their total.
    public static func audience(_ days: [DenseDay], selection: MinuteSelection, modes: Set<ViewingMode>) -> (channels: [String: Int64], all: Int64) {
        var out: [String: Int64] = [:]
        var all: Int64 = 0
        for d in days {
            let ranges = local(selection, day: d.day)
            guard !ranges.isEmpty else { continue }
            for (name, channel) in d.channels {
                var n: Int64 = 0
                for mode in modes { for r in ranges { n += channel.boxMinutes(mode, r.lowerBound, r.upperBound) } }
                if n > 0 {
                    out[name, default: 0] += n
                    all += n
                }
            }
        }
        return (out, all)
    }

    /// Reach (≥ 1 minute) and reach3 (≥ 3 consecutive minutes, all in the selection) of `wanted` over `selection`,
    /// which must be a union of whole buckets. `days` may be in any order; a day that is not there has no boxes.
    public static func reach(
        _ days: [DenseDay], selection: MinuteSelection, channels wanted: Set<String>
    ) throws(Rollup.Failure)
        -> [String: (reach1: Int, reach3: Int)]
    {
        guard let bucketMinutes = days.first?.bucketMinutes else { return [:] }
        guard days.allSatisfy({ $0.bucketMinutes == bucketMinutes }) else { throw .shapeMismatch }
        for r in selection.ranges where r.lowerBound % bucketMinutes != 0 || r.upperBound % bucketMinutes != 0 {
            throw .selectionNotAlignedToBuckets
        }
        let byDay = Dictionary(days.map { ($0.day, $0) }, uniquingKeysWith: { a, _ in a })
        let perDay = Int(minutesPerDay / bucketMinutes)
        // Each day's selected buckets.
        var selected: [Int64: [Bool]] = [:]
        for d in days {
            let ranges = local(selection, day: d.day)
            guard !ranges.isEmpty else { continue }
            var mask = [Bool](repeating: false, count: perDay)
            for r in ranges { for b in (r.lowerBound / Int(bucketMinutes))..<(r.upperBound / Int(bucketMinutes)) { mask[b] = true } }
            selected[d.day] = mask
        }
        // Channels are independent: computed on every core.
        let names = wanted.sorted()
        let counts = concurrentMap(names) { name -> (reach1: Int, reach3: Int) in
            var sets1: [BoxSet] = []
            var sets3: [BoxSet] = []
            for (dayNumber, mask) in selected {
                guard let channel = byDay[dayNumber]?.channels[name] else { continue }
                if mask.allSatisfy({ $0 }) {
                    sets1.append(channel.dayReached)
                    sets3.append(channel.dayRun3)
                } else {
                    // Each maximal run of selected buckets: one set if it was made at load, else per bucket.
                    var b = 0
                    while b < perDay {
                        guard mask[b] else {
                            b += 1
                            continue
                        }
                        var e = b
                        while e < perDay && mask[e] { e += 1 }
                        let run = channel.spans[b..<e] ?? channel.union(b..<e)
                        sets1.append(run.reached)
                        sets3.append(run.run3)
                        b = e
                    }
                }
                // A run across midnight from the day before, if its last bucket is selected too.
                if mask[0], let first = channel.buckets[0], let before = selected[dayNumber - 1], before[perDay - 1],
                    let last = byDay[dayNumber - 1]?.channels[name]?.buckets[perDay - 1]
                {
                    sets3.append(last.across(to: first))
                }
            }
            let r1 = BoxSet.union(sets1).count
            return r1 > 0 ? (r1, BoxSet.union(sets3).count) : (0, 0)
        }
        var out: [String: (reach1: Int, reach3: Int)] = [:]
        for (name, r) in zip(names, counts) where r.reach1 > 0 { out[name] = r }
        return out
    }

    /// The tallies of `selection`: box-minutes of every channel, reach of `reachFor` channels (every channel when nil;
    /// none when empty). Reach needs whole buckets and every mode (it is kept for all modes together).
    public static func tallies(
        _ days: [DenseDay], selection: MinuteSelection, modes: Set<ViewingMode>, universe: Int, reachFor: Set<String>?
    ) throws(Rollup.Failure) -> Tallies {
        let (minutes, all) = audience(days, selection: selection, modes: modes)
        var channels = minutes.mapValues { Tallies.Channel(boxMinutes: $0) }
        let wanted = reachFor ?? Set(minutes.keys)
        if !wanted.isEmpty {
            guard modes == Set(ViewingMode.allCases) else { throw .modesDifferFromReachModes }
            for (name, r) in try reach(days, selection: selection, channels: wanted) {
                channels[name, default: Tallies.Channel()].reach1 = r.reach1
                channels[name, default: Tallies.Channel()].reach3 = r.reach3
            }
        }
        return Tallies(minutes: selection.count, universe: universe, allBoxMinutes: all, channels: channels)
    }
}
