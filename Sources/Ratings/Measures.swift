/// The integer counts every measure is computed from. Measures from raw credit and from rollups go through
/// the same `Tallies`, so they agree exactly when their tallies do.
public struct Tallies: Sendable, Hashable {
    /// Per channel.
    public struct Channel: Sendable, Hashable {
        /// Credited box-minutes of the channel in the selection.
        public var boxMinutes: Int64
        /// Boxes with at least one credited minute.
        public var reach1: Int
        /// Boxes with at least three consecutive credited minutes (all in the selection).
        public var reach3: Int

        public init(boxMinutes: Int64 = 0, reach1: Int = 0, reach3: Int = 0) {
            self.boxMinutes = boxMinutes
            self.reach1 = reach1
            self.reach3 = reach3
        }
    }

    /// Minutes in the selection.
    public var minutes: Int64
    /// The universe U: boxes the answer is about (active that day or registered; the caller's choice).
    public var universe: Int
    /// Credited box-minutes of all channels (share's denominator).
    public var allBoxMinutes: Int64
    public var channels: [String: Channel]

    public init(minutes: Int64, universe: Int, allBoxMinutes: Int64, channels: [String: Channel]) {
        self.minutes = minutes
        self.universe = universe
        self.allBoxMinutes = allBoxMinutes
        self.channels = channels
    }

    /// Tallies straight from per-box credit: the minutes in `selection` credited in one of `modes`.
    public static func fromCredits(
        _ boxes: [BoxCredits], selection: MinuteSelection, modes: Set<ViewingMode> = Set(ViewingMode.allCases),
        universe: Int
    ) -> Tallies {
        var channels: [String: Channel] = [:]
        var all: Int64 = 0
        for box in boxes {
            var minutesByChannel: [String: [Int64]] = [:]
            for c in box.credits where modes.contains(c.mode) && selection.contains(c.minute) {
                minutesByChannel[c.channel, default: []].append(c.minute)
            }
            for (channel, minutes) in minutesByChannel {
                let sorted = Set(minutes).sorted()
                all += Int64(sorted.count)
                var t = channels[channel] ?? Channel()
                t.boxMinutes += Int64(sorted.count)
                t.reach1 += 1
                if hasRun(of: 3, in: sorted) { t.reach3 += 1 }
                channels[channel] = t
            }
        }
        return Tallies(minutes: selection.count, universe: universe, allBoxMinutes: all, channels: channels)
    }

    /// Whether sorted distinct `minutes` hold `length` consecutive minutes.
    static func hasRun(of length: Int, in minutes: [Int64]) -> Bool {
        var run = 0
        var previous: Int64?
        for m in minutes {
            run = previous.map { m == $0 + 1 } == true ? run + 1 : 1
            if run >= length { return true }
            previous = m
        }
        return false
    }
}

/// A 95 % (or `z`) confidence interval of a proportion, in [0, 1].
public struct ConfidenceInterval: Sendable, Hashable {
    public var lower: Double
    public var upper: Double

    public init(lower: Double, upper: Double) {
        self.lower = lower
        self.upper = upper
    }

    /// The Wilson score interval of proportion `p` observed over `n` units. Nil when `n` is 0.
    public static func wilson(p: Double, n: Int, z: Double = RatingsParameters.default.z) -> ConfidenceInterval? {
        guard n > 0 else { return nil }
        let n = Double(n)
        let z2 = z * z
        let denominator = 1 + z2 / n
        let centre = (p + z2 / (2 * n)) / denominator
        let half = z / denominator * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        return ConfidenceInterval(lower: max(0, centre - half), upper: min(1, centre + half))
    }
}

/// The measures of one channel over a selection of minutes (docs/ratings-method.md, "Measures").
public struct ChannelMeasures: Sendable, Hashable {
    public var channel: String
    /// Credited box-minutes.
    public var boxMinutes: Int64
    /// Average minute audience: box-minutes / minutes in the selection (boxes).
    public var amr: Double
    /// AMR / U, as a proportion (× 100 for %).
    public var rating: Double
    /// Wilson interval of `rating`, with n = U.
    public var ratingInterval: ConfidenceInterval?
    /// Box-minutes / all channels' box-minutes; nil when nobody watched anything.
    public var share: Double?
    /// Boxes with ≥ 1 credited minute, and as a proportion of U with its Wilson interval.
    public var reach1: Int
    public var reach1Rate: Double
    public var reach1Interval: ConfidenceInterval?
    /// Boxes with ≥ 3 consecutive credited minutes, and as a proportion of U with its Wilson interval.
    public var reach3: Int
    public var reach3Rate: Double
    public var reach3Interval: ConfidenceInterval?
    /// Average time viewed per reached box, in minutes: box-minutes / reach1; nil when reach1 is 0.
    public var atvMinutes: Double?
    /// The cell's base: U.
    public var base: Int
}

public enum Measures {
    /// The measures of every channel in `tallies`, sorted by channel. With U = 0 or an empty selection,
    /// ratios are 0 and intervals nil.
    public static func compute(_ tallies: Tallies, parameters: RatingsParameters = .default) -> [ChannelMeasures] {
        let u = tallies.universe
        func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : 0 }
        return tallies.channels.keys.sorted().compactMap { channel in
            guard let t = tallies.channels[channel] else { return nil }
            let amr = ratio(Double(t.boxMinutes), Double(tallies.minutes))
            let rating = ratio(amr, Double(u))
            let reach1Rate = ratio(Double(t.reach1), Double(u))
            let reach3Rate = ratio(Double(t.reach3), Double(u))
            return ChannelMeasures(
                channel: channel, boxMinutes: t.boxMinutes, amr: amr, rating: rating,
                ratingInterval: .wilson(p: rating, n: u, z: parameters.z),
                share: tallies.allBoxMinutes > 0 ? Double(t.boxMinutes) / Double(tallies.allBoxMinutes) : nil,
                reach1: t.reach1, reach1Rate: reach1Rate, reach1Interval: .wilson(p: reach1Rate, n: u, z: parameters.z),
                reach3: t.reach3, reach3Rate: reach3Rate, reach3Interval: .wilson(p: reach3Rate, n: u, z: parameters.z),
                atvMinutes: t.reach1 > 0 ? Double(t.boxMinutes) / Double(t.reach1) : nil, base: u)
        }
    }
}
