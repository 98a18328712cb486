/// Every rule of the ratings method (docs/ratings-method.md) as a named parameter, with its default.
///
/// Times are integer milliseconds on the hub's clock; minutes are clock minutes (`ms / 60_000`, floored).
public struct RatingsParameters: Sendable, Equatable {
    /// A tune shorter than this earns nothing (surfing); one that lasts at least this long counts from its
    /// first millisecond. Default 10 s.
    public var dwellMs: Int64
    /// Capping ("STB on, TV off"): with no interaction for this long, credit stops at the last
    /// interaction + this. Default 4 h.
    public var capMs: Int64
    /// A minute is credited to the channel watched longest in it only if that channel was watched at
    /// least this long in the minute. Default 30 s (half the minute: credited minutes then round viewing
    /// time half up, so minute audiences do not drift from viewing time).
    public var minuteMinimumMs: Int64
    /// An event whose corrected time is later than its hub receive time + this is a clock error (nothing
    /// is reported before it happens): not credited, counted as skewed. Default 5 min (one-way latency of
    /// `hello` and clock drift during a connection are far smaller).
    public var futureSkewToleranceMs: Int64
    /// Late data: an event whose corrected time is earlier than its hub receive time − this is stored but
    /// not credited, and counted as late. Default 48 h.
    public var lateHorizonMs: Int64
    /// An answer cell whose base (boxes in its segment's universe) is below this is suppressed. Default 5.
    public var suppressionK: Int
    /// The normal quantile of the confidence intervals. Default 1.959964 (95 %).
    public var z: Double

    public static let minuteMs: Int64 = 60_000

    public init(
        dwellMs: Int64 = 10_000, capMs: Int64 = 4 * 3_600_000, minuteMinimumMs: Int64 = 30_000,
        futureSkewToleranceMs: Int64 = 5 * 60_000, lateHorizonMs: Int64 = 48 * 3_600_000, suppressionK: Int = 5,
        z: Double = 1.959_963_984_540_054
    ) {
        self.dwellMs = dwellMs
        self.capMs = capMs
        self.minuteMinimumMs = minuteMinimumMs
        self.futureSkewToleranceMs = futureSkewToleranceMs
        self.lateHorizonMs = lateHorizonMs
        self.suppressionK = suppressionK
        self.z = z
    }

    /// The defaults of docs/ratings-method.md.
    public static let `default` = RatingsParameters()

    /// What is wrong with a set of parameters, if anything.
    public enum Invalid: Error, Sendable, Equatable {
        case negativeDwell
        /// Capping must leave room for the dwell (a qualifying tune is always credited from its start).
        case capShorterThanDwell
        /// The minimum must be within (0, 60 s]: with 0 an empty minute could be credited.
        case minuteMinimumOutOfRange
        case negativeSkewTolerance
        case nonPositiveLateHorizon
        case nonPositiveK
        case nonPositiveZ
    }

    /// Checks the parameters; throws the first rule they break.
    public func validate() throws(Invalid) {
        if dwellMs < 0 { throw .negativeDwell }
        if capMs < dwellMs { throw .capShorterThanDwell }
        if minuteMinimumMs <= 0 || minuteMinimumMs > Self.minuteMs { throw .minuteMinimumOutOfRange }
        if futureSkewToleranceMs < 0 { throw .negativeSkewTolerance }
        if lateHorizonMs <= 0 { throw .nonPositiveLateHorizon }
        if suppressionK <= 0 { throw .nonPositiveK }
        if !(z > 0) { throw .nonPositiveZ }
    }
}

/// How a tune is watched. Boxes that do not say are watching live.
public enum ViewingMode: String, Sendable, Hashable, CaseIterable, Comparable {
    case live, timeshift, catchup

    public static func < (a: ViewingMode, b: ViewingMode) -> Bool {
        allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
    }
}

/// The clock minute holding `ms` (floored, also before the epoch).
public func minuteIndex(_ ms: Int64) -> Int64 { floorDiv(ms, RatingsParameters.minuteMs) }

/// `a / b` rounded towards −∞ (`b` > 0).
public func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return a % b < 0 ? q - 1 : q
}
