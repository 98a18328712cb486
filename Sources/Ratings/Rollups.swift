/// Additive rollups of minute credit (docs/ratings-method.md, "Rollups"), for the hub to persist: measures
/// computed from them equal measures computed from the raw credit (property-tested).
///
/// - Audience: per (channel, mode, minute), the number of boxes credited. Counters add up across boxes
///   and nodes.
/// - Reach: per (channel, bucket of `bucketMinutes`, e.g. a day), the exact set of boxes with ≥ 1 credited
///   minute, the set with a run of ≥ 3 consecutive minutes inside the bucket (both `BoxSet`s: roaring bitmaps,
///   unioned in one many-way OR per channel at query time), and for runs that cross a bucket edge each box's run
///   at the bucket's start (`head`) and end (`tail`), capped at 2 minutes. Reach is built for one set of modes
///   (`reachModes`), as a run may mix modes.
public struct Rollup: Sendable, Hashable {
    public struct AudienceKey: Sendable, Hashable {
        public var channel: String
        public var mode: ViewingMode
        public var minute: Int64

        public init(channel: String, mode: ViewingMode, minute: Int64) {
            self.channel = channel
            self.mode = mode
            self.minute = minute
        }
    }

    public struct ReachKey: Sendable, Hashable {
        public var channel: String
        public var bucket: Int64

        public init(channel: String, bucket: Int64) {
            self.channel = channel
            self.bucket = bucket
        }
    }

    /// The boxes of one channel in one bucket.
    public struct ReachCell: Sendable, Hashable {
        /// ≥ 1 credited minute in the bucket.
        public var reached: BoxSet = []
        /// ≥ 3 consecutive credited minutes inside the bucket.
        public var run3: BoxSet = []
        /// Length (1 or 2; 2 means ≥ 2) of the run of credited minutes starting at the bucket's first minute.
        public var head: [BoxIndex: UInt8] = [:]
        /// Length (1 or 2; 2 means ≥ 2) of the run ending at the bucket's last minute.
        public var tail: [BoxIndex: UInt8] = [:]

        public init() {}

        /// Adds `other`'s boxes (disjoint from this cell's: each box is rolled up once).
        public mutating func merge(_ other: ReachCell) {
            reached.formUnion(other.reached)
            run3.formUnion(other.run3)
            head.merge(other.head) { max($0, $1) }
            tail.merge(other.tail) { max($0, $1) }
        }

        /// Adds one box's minutes of the bucket.
        mutating func add(_ box: BoxIndex, run3 hasRun3: Bool, head: UInt8?, tail: UInt8?) {
            reached.insert(box)
            if hasRun3 { run3.insert(box) }
            if let head { self.head[box] = head }
            if let tail { self.tail[box] = tail }
        }
    }

    /// Reach buckets are `bucketMinutes` long (at least 3), starting at minute `−alignMinutes` modulo the
    /// length: for local days, 1440 and the zone's UTC offset in minutes (e.g. 180 for UTC+3).
    public var bucketMinutes: Int64
    public var alignMinutes: Int64
    /// The modes that reach counts.
    public var reachModes: Set<ViewingMode>
    public var audience: [AudienceKey: Int] = [:]
    public var reach: [ReachKey: ReachCell] = [:]

    /// What is wrong with a rollup or a query on it.
    public enum Failure: Error, Sendable, Equatable {
        /// Reach buckets shorter than 3 minutes cannot hold the ≥ 3 minute reach.
        case bucketTooShort
        /// The selection is not a union of whole reach buckets.
        case selectionNotAlignedToBuckets
        /// The query's modes are not those the reach was built for.
        case modesDifferFromReachModes
        /// Merging rollups of different shapes.
        case shapeMismatch
    }

    /// An empty rollup.
    public init(
        bucketMinutes: Int64 = 1440, alignMinutes: Int64 = 0, reachModes: Set<ViewingMode> = Set(ViewingMode.allCases)
    ) throws(Failure) {
        guard bucketMinutes >= 3 else { throw .bucketTooShort }
        self.bucketMinutes = bucketMinutes
        self.alignMinutes = alignMinutes
        self.reachModes = reachModes
    }

    /// The reach bucket of `minute`.
    public func bucket(of minute: Int64) -> Int64 {
        floorDiv(minute + alignMinutes, bucketMinutes)
    }

    /// The minutes of `bucket`.
    public func minutes(ofBucket bucket: Int64) -> Range<Int64> {
        let start = bucket * bucketMinutes - alignMinutes
        return start..<(start + bucketMinutes)
    }

    /// Adds one box's credit (each box once per rollup).
    public mutating func add(_ box: BoxCredits) {
        var reachMinutes: [String: Set<Int64>] = [:]
        for c in box.credits {
            audience[AudienceKey(channel: c.channel, mode: c.mode, minute: c.minute), default: 0] += 1
            if reachModes.contains(c.mode) { reachMinutes[c.channel, default: []].insert(c.minute) }
        }
        for (channel, channelMinutes) in reachMinutes {
            var byBucket: [Int64: [Int64]] = [:]
            for m in channelMinutes { byBucket[bucket(of: m), default: []].append(m) }
            for (b, ms) in byBucket {
                let sorted = ms.sorted()
                let range = minutes(ofBucket: b)
                let head: UInt8? =
                    sorted.first == range.lowerBound ? (sorted.count > 1 && sorted[1] == range.lowerBound + 1 ? 2 : 1) : nil
                let tail: UInt8? =
                    sorted.last == range.upperBound - 1
                    ? (sorted.count > 1 && sorted[sorted.count - 2] == range.upperBound - 2 ? 2 : 1) : nil
                // In place (the dictionary's modify accessor), so the cell's sets are not copied.
                reach[ReachKey(channel: channel, bucket: b), default: ReachCell()].add(
                    box.box, run3: Tallies.hasRun(of: 3, in: sorted), head: head, tail: tail)
            }
        }
    }

    /// Builds the rollup of `boxes`.
    public static func build(
        _ boxes: [BoxCredits], bucketMinutes: Int64 = 1440, alignMinutes: Int64 = 0,
        reachModes: Set<ViewingMode> = Set(ViewingMode.allCases)
    ) throws(Failure) -> Rollup {
        var rollup = try Rollup(bucketMinutes: bucketMinutes, alignMinutes: alignMinutes, reachModes: reachModes)
        for box in boxes { rollup.add(box) }
        return rollup
    }

    /// Adds a rollup of other boxes (e.g. built by another node, or for another slice of the fleet).
    public mutating func merge(_ other: Rollup) throws(Failure) {
        guard other.bucketMinutes == bucketMinutes, other.alignMinutes == alignMinutes,
            other.reachModes == reachModes
        else { throw .shapeMismatch }
        audience.merge(other.audience, uniquingKeysWith: +)
        for (key, cell) in other.reach { reach[key, default: ReachCell()].merge(cell) }
    }

    /// The tallies of a selection of whole reach buckets, for `modes` (must be `reachModes`).
    public func tallies(selection: MinuteSelection, modes: Set<ViewingMode>, universe: Int) throws(Failure) -> Tallies {
        guard modes == reachModes else { throw .modesDifferFromReachModes }
        var buckets: [Int64] = []
        for r in selection.ranges {
            guard bucket(of: r.lowerBound) * bucketMinutes - alignMinutes == r.lowerBound,
                bucket(of: r.upperBound) * bucketMinutes - alignMinutes == r.upperBound
            else { throw .selectionNotAlignedToBuckets }
            buckets.append(contentsOf: bucket(of: r.lowerBound)..<bucket(of: r.upperBound))
        }
        var channels: [String: Tallies.Channel] = [:]
        var all: Int64 = 0
        for (key, count) in audience where modes.contains(key.mode) && selection.contains(key.minute) {
            channels[key.channel, default: Tallies.Channel()].boxMinutes += Int64(count)
            all += Int64(count)
        }
        let selected = Set(buckets)
        // Per channel, the sets to union: one many-way OR each, not box by box.
        var reached: [String: [BoxSet]] = [:]
        var run3: [String: [BoxSet]] = [:]
        for (key, cell) in reach where selected.contains(key.bucket) {
            reached[key.channel, default: []].append(cell.reached)
            run3[key.channel, default: []].append(cell.run3)
            // A run across the edge with the next bucket, if that one is selected too.
            if selected.contains(key.bucket + 1),
                let next = reach[ReachKey(channel: key.channel, bucket: key.bucket + 1)]
            {
                let across = cell.tail.filter { $0.value + (next.head[$0.key] ?? 0) >= 3 }.keys
                if !across.isEmpty { run3[key.channel, default: []].append(BoxSet(across)) }
            }
        }
        for (channel, sets) in reached {
            channels[channel, default: Tallies.Channel()].reach1 = BoxSet.union(sets).count
            channels[channel, default: Tallies.Channel()].reach3 = BoxSet.union(run3[channel] ?? []).count
        }
        return Tallies(minutes: selection.count, universe: universe, allBoxMinutes: all, channels: channels)
    }
}
