import ArgusSupport
import EPG
import Foundation
import Ratings
import Synchronization

/// Answers ratings questions from the stored rollups. Built days are immutable per version, so
/// each day's rollup is loaded once per version and kept (bounded: the most recent
/// `cacheDays` days).
package final class RatingsService: Sendable {
    package let store: RatingsStore
    package let dayparts: DaypartSchedule
    package let parameters: RatingsParameters
    /// The segment dimensions the builder builds.
    package let segments: [SegmentDimension]
    /// Registered boxes (revoked excluded), of a segment or of the fleet, for the `registered`
    /// universe.
    let registered: @Sendable (RatingsQuery.Segment?) async throws -> Int
    /// What now is for live figures and exports (real, or a simulation's).
    package let clock: HubClock
    private let cache = Mutex<[String: (version: Int, rollup: Rollup)]>([:])
    private let denseCache = Mutex<[String: (version: Int, day: DenseDay)]>([:])
    private let cacheEntries = 62

    package init(
        store: RatingsStore, dayparts: DaypartSchedule, segments: [SegmentDimension] = [], parameters: RatingsParameters = .default,
        clock: HubClock = .real, registered: @escaping @Sendable (RatingsQuery.Segment?) async throws -> Int
    ) {
        self.store = store
        self.dayparts = dayparts
        self.segments = segments
        self.parameters = parameters
        self.registered = registered
        self.clock = clock
    }

    package func answer(_ q: RatingsQuery) async throws -> RatingsAnswer {
        let days = floorDiv(q.from, 1440)..<(floorDiv(q.to - 1, 1440) + 1)
        let infos = try await store.dayInfos(days)
        let segment = q.segment?.key ?? ""
        var dense: [DenseDay] = []
        for info in infos { dense.append(try await denseDay(info, segment: segment)) }
        let universe: Int =
            switch q.universe {
            case .active: BoxSet.union(infos.map { segment.isEmpty ? $0.active : $0.segments[segment] ?? BoxSet() }).count
            case .registered: try await registered(q.segment)
            }
        // Rows are independent: computed on every core (a day of 15-minute rows is 96 of them).
        let rows = concurrentMap(q.selections(dayparts), minimumPerTask: 8) { (from, to, selection) -> Result<RatingsAnswer.Row, Rollup.Failure> in
            Result { () throws(Rollup.Failure) in try row(from: from, to: to, selection: selection, dense: dense, universe: universe, q) }
        }
        var series: [RatingsAnswer.Row] = []
        for r in rows { series.append(try r.get()) }
        let built = infos.map(\.builtAt).max()
        return RatingsAnswer(
            from: Self.iso(q.from), to: Self.iso(q.to), bucket: q.bucket?.rawValue, daypart: q.daypart,
            segment: q.segment.map { "\($0.dimension.rawValue):\($0.value)" },
            modes: q.modes.map(\.rawValue).sorted(), measures: q.measures.map(\.rawValue),
            universe: .init(kind: q.universe.rawValue, size: universe), sampleSize: universe, k: parameters.suppressionK,
            confidence: "Wilson 95 % over boxes (n = universe)", daysBuilt: infos.count, daysInRange: Int(days.count),
            notCredited: .init(skewed: infos.reduce(0) { $0 + $1.skewed }, late: infos.reduce(0) { $0 + $1.late }),
            builtAt: built.map { Self.isoMs($0) }, series: series)
    }

    /// One row of an answer: a bucket's (or the whole range's) measures of the channels it shows.
    func row(
        from: Int64, to: Int64, selection: MinuteSelection, dense: [DenseDay], universe: Int, _ q: RatingsQuery
    ) throws(Rollup.Failure)
        -> RatingsAnswer.Row
    {
        // Box-minutes of every channel first (share's denominator, and the ranking), then
        // reach only for the channels the row shows.
        var tallies = try DenseDay.tallies(dense, selection: selection, modes: q.modes, universe: universe, reachFor: [])
        var shown = Set(tallies.channels.keys)
        if let wanted = q.channels { shown.formIntersection(wanted) }
        if let top = q.top {
            let ranked = tallies.channels.filter { shown.contains($0.key) }.sorted { ($0.value.boxMinutes, $1.key) > ($1.value.boxMinutes, $0.key) }
            shown = Set(ranked.prefix(top).map(\.key))
        }
        if q.wantsReach, !shown.isEmpty {
            for (name, r) in try DenseDay.reach(dense, selection: selection, channels: shown) {
                tallies.channels[name, default: Tallies.Channel()].reach1 = r.reach1
                tallies.channels[name, default: Tallies.Channel()].reach3 = r.reach3
            }
        }
        var measures = Measures.compute(tallies, parameters: parameters)
        measures.removeAll { !shown.contains($0.channel) }
        if q.top != nil { measures.sort { ($0.boxMinutes, $1.channel) > ($1.boxMinutes, $0.channel) } }
        let suppressed = universe < parameters.suppressionK
        return RatingsAnswer.Row(
            from: Self.iso(from), to: Self.iso(to), minutes: Int(selection.count),
            channels: measures.map { RatingsAnswer.ChannelRow($0, q.measures, suppressed: suppressed) })
    }

    /// A stored day as queries read it, loaded once per version (bounded like `dayRollup`'s).
    func denseDay(_ info: RatingsStore.DayInfo, segment: String) async throws -> DenseDay {
        let key = "\(info.day)|\(segment)"
        if let hit = denseCache.withLock({ $0[key] }), hit.version == info.version { return hit.day }
        // Each daypart's hours are unioned once per day at load: a daypart over 30 days ORs 30 sets.
        let day = try await store.denseDay(info, segment: segment, spans: dayparts.dayparts.flatMap(\.hourSpans))
        denseCache.withLock { c in
            c[key] = (info.version, day)
            if c.count > cacheEntries, let oldest = c.keys.min(by: { Self.day(of: $0) < Self.day(of: $1) }) { c[oldest] = nil }
        }
        return day
    }

    func dayRollup(_ info: RatingsStore.DayInfo, segment: String = "") async throws -> Rollup {
        let key = "\(info.day)|\(segment)"
        if let hit = cache.withLock({ $0[key] }), hit.version == info.version { return hit.rollup }
        let rollup = try await store.rollup(info, segment: segment)
        cache.withLock { c in
            c[key] = (info.version, rollup)
            // Bounded: drop the oldest day's entries.
            if c.count > cacheEntries, let oldest = c.keys.min(by: { Self.day(of: $0) < Self.day(of: $1) }) { c[oldest] = nil }
        }
        return rollup
    }

    private static func day(of key: String) -> Int64 { Int64(key.prefix { $0 != "|" }) ?? 0 }

    package static func iso(_ minute: Int64) -> String { isoMs(minute * RatingsParameters.minuteMs) }
    /// Arithmetic, not a formatter per call: exports write one per row.
    static func isoMs(_ ms: Int64) -> String { XMLTVTime.iso8601(ms) }
}

/// The answer to a ratings question: what was asked, the universe and sample size, and a row per
/// bucket with each channel's measures. Percentages are 0–100; intervals are Wilson 95 %.
package struct RatingsAnswer: Sendable, Encodable, Equatable {
    package struct Universe: Sendable, Encodable, Equatable {
        package var kind: String
        package var size: Int
    }

    /// Events received in the range's days that were stored but not credited.
    package struct NotCredited: Sendable, Encodable, Equatable {
        /// Placed after their receive time + the skew tolerance: the box's clock jumped.
        package var skewed: Int
        /// Placed before their receive time − the late horizon.
        package var late: Int
    }

    package struct Interval: Sendable, Encodable, Equatable {
        package var lowerPct: Double
        package var upperPct: Double
        init?(_ ci: ConfidenceInterval?) {
            guard let ci else { return nil }
            lowerPct = ci.lower * 100
            upperPct = ci.upper * 100
        }
    }

    package struct ChannelRow: Sendable, Encodable, Equatable {
        package var channel: String
        /// True when the base (the universe) is below k: no figure is shown.
        package var suppressed: Bool?
        package var boxMinutes: Int64?
        package var amr: Double?
        package var ratingPct: Double?
        package var ratingInterval: Interval?
        package var sharePct: Double?
        package var reach: Int?
        package var reachPct: Double?
        package var reachInterval: Interval?
        package var reach3: Int?
        package var reach3Pct: Double?
        package var reach3Interval: Interval?
        package var atvMinutes: Double?

        init(_ m: ChannelMeasures, _ wanted: [RatingsQuery.Measure], suppressed: Bool) {
            channel = m.channel
            if suppressed {
                self.suppressed = true
                return
            }
            boxMinutes = m.boxMinutes
            for w in wanted {
                switch w {
                case .amr: amr = m.amr
                case .rating: (ratingPct, ratingInterval) = (m.rating * 100, Interval(m.ratingInterval))
                case .share: sharePct = m.share.map { $0 * 100 }
                case .reach: (reach, reachPct, reachInterval) = (m.reach1, m.reach1Rate * 100, Interval(m.reach1Interval))
                case .reach3: (reach3, reach3Pct, reach3Interval) = (m.reach3, m.reach3Rate * 100, Interval(m.reach3Interval))
                case .atv: atvMinutes = m.atvMinutes
                }
            }
        }
    }

    package struct Row: Sendable, Encodable, Equatable {
        package var from: String
        package var to: String
        /// Minutes in this row's selection (fewer than to − from with a daypart).
        package var minutes: Int
        package var channels: [ChannelRow]
    }

    package var from: String
    package var to: String
    package var bucket: String?
    package var daypart: String?
    package var segment: String?
    package var modes: [String]
    package var measures: [String]
    package var universe: Universe
    /// Boxes the intervals are computed over (the universe).
    package var sampleSize: Int
    /// Cells with a base below k boxes are suppressed.
    package var k: Int
    package var confidence: String
    /// Days of the range with a stored build, of all its days.
    package var daysBuilt: Int
    package var daysInRange: Int
    package var notCredited: NotCredited
    /// When the newest of those days was built.
    package var builtAt: String?
    package var series: [Row]

    /// The answer as CSV: a row per (bucket, channel); suppressed figures read `suppressed`.
    package var csv: String {
        let header =
            ["from", "to", "channel", "box_minutes", "amr", "rating_pct", "rating_lower_pct", "rating_upper_pct", "share_pct"]
            + ["reach", "reach_pct", "reach_lower_pct", "reach_upper_pct", "reach3", "reach3_pct", "reach3_lower_pct", "reach3_upper_pct", "atv_minutes"]
        var lines = [header.joined(separator: ",")]
        func f(_ v: Double?) -> String { v.map(Self.fixed6) ?? "" }
        func i<T: BinaryInteger>(_ v: T?) -> String { v.map { "\($0)" } ?? "" }
        for row in series {
            for c in row.channels {
                let figures: [String] =
                    c.suppressed == true
                    ? Array(repeating: Cell<Int>.marker, count: header.count - 3)
                    : [
                        i(c.boxMinutes), f(c.amr), f(c.ratingPct), f(c.ratingInterval?.lowerPct), f(c.ratingInterval?.upperPct), f(c.sharePct),
                        i(c.reach), f(c.reachPct), f(c.reachInterval?.lowerPct), f(c.reachInterval?.upperPct),
                        i(c.reach3), f(c.reach3Pct), f(c.reach3Interval?.lowerPct), f(c.reach3Interval?.upperPct), f(c.atvMinutes),
                    ]
                lines.append(([row.from, row.to, Self.csvField(c.channel)] + figures).joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `v` with six decimals, as `String(format: "%.6f", v)` writes it (the C library's printf,
    /// without Foundation's format parsing per call: a day of 15-minute rows has 200,000 of them).
    static func fixed6(_ v: Double) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 48) { buf -> String in
            let n = withVaList([v]) { vsnprintf(buf.baseAddress, buf.count, "%.6f", $0) }
            guard n > 0, Int(n) < buf.count else { return String(format: "%.6f", v) }
            return String(decoding: UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buf[..<Int(n)])), as: UTF8.self)
        }
    }

    /// A channel id as a CSV field: quoted when needed, and never read as a formula.
    package static func csvField(_ s: String) -> String {
        var v = s
        if let first = v.first, "=+-@".contains(first) { v = "'" + v }
        return v.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : v
    }
}
