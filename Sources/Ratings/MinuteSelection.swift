/// A set of clock minutes, as sorted, disjoint, non-adjacent ranges (a time range, a daypart over days…).
public struct MinuteSelection: Sendable, Hashable {
    /// Sorted, disjoint and non-adjacent; none empty.
    public private(set) var ranges: [Range<Int64>]

    /// The union of `ranges` (in any order, overlapping or not).
    public init(_ ranges: [Range<Int64>]) {
        var merged: [Range<Int64>] = []
        for r in ranges.filter({ !$0.isEmpty }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        self.ranges = merged
    }

    /// The minutes of `range`.
    public init(_ range: Range<Int64>) { self.init([range]) }

    /// How many minutes.
    public var count: Int64 { ranges.reduce(0) { $0 + Int64($1.count) } }

    public func contains(_ minute: Int64) -> Bool {
        var lo = 0
        var hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound <= minute { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].contains(minute)
    }
}

/// A box in measures and rollups: a dense index the hub assigns (e.g. registration order), so that sets of
/// boxes can be stored as bitmaps.
public typealias BoxIndex = UInt32

/// One box's credited minutes.
public struct BoxCredits: Sendable, Hashable {
    public var box: BoxIndex
    public var credits: [MinuteCredit]

    public init(box: BoxIndex, credits: [MinuteCredit]) {
        self.box = box
        self.credits = credits
    }
}
