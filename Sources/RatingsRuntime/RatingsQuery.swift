import Commands
import Foundation
import Ratings

/// A ratings question, parsed and checked (docs/api.md, "Ratings"). Every refusal names the
/// parameter at fault.
package struct RatingsQuery: Sendable, Equatable {
    package enum Bucket: String, Sendable, CaseIterable {
        case minute, quarter = "15min", hour, day
        package var minutes: Int64 {
            switch self {
            case .minute: 1
            case .quarter: 15
            case .hour: 60
            case .day: 1440
            }
        }
    }

    package enum Measure: String, Sendable, CaseIterable {
        case amr, rating, share, reach, reach3, atv
        var needsReach: Bool { self == .reach || self == .reach3 || self == .atv }
    }

    package enum Universe: String, Sendable, CaseIterable {
        /// Boxes active in the range (any event or credited minute in one of its days).
        case active
        /// Registered boxes, revoked ones excluded.
        case registered
    }

    package enum Format: String, Sendable, CaseIterable { case json, csv }

    /// A segment of the fleet: `dimension:value`, e.g. `model:acme-4k`, `tag:region-north`.
    package struct Segment: Sendable, Equatable {
        package var dimension: SegmentDimension
        package var value: String
        package init(dimension: SegmentDimension, value: String) {
            self.dimension = dimension
            self.value = value
        }
        /// The stored key (`model=acme-4k`).
        package var key: String { dimension.key(value) }
    }

    /// Minutes since 1970 (UTC), `[from, to)`.
    package var from: Int64
    package var to: Int64
    package var bucket: Bucket?
    package var daypart: String?
    package var segment: Segment?
    package var channels: [String]?
    package var measures: [Measure]
    package var modes: Set<ViewingMode>
    package var universe: Universe
    package var top: Int?
    package var format: Format

    package static let parameters: Set<String> = [
        "from", "to", "bucket", "daypart", "channels", "measures", "modes", "universe", "top", "format", "segment",
    ]
    /// Most days one question may cover.
    package static let maxDays: Int64 = 31
    /// Most rows of a time series.
    package static let maxBuckets: Int64 = 2000

    /// Reach needs every mode (it is kept for all modes together) and whole hours.
    package var wantsReach: Bool { measures.contains { $0.needsReach } }

    package static func parse(
        _ q: [String: String], dayparts: DaypartSchedule, segments: [SegmentDimension] = []
    ) throws(RatingsQueryError) -> RatingsQuery {
        for name in q.keys.sorted() where !parameters.contains(name) {
            throw .init(name, "unknown parameter; known: \(parameters.sorted().joined(separator: ", "))")
        }
        var segment: Segment? = nil
        if let s = q["segment"] {
            guard !segments.isEmpty else {
                throw .init("segment", "unknown segment \(quoted(s)): no segment dimensions are configured on this hub")
            }
            let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, let dim = SegmentDimension(rawValue: parts[0]), segments.contains(dim), !parts[1].isEmpty else {
                throw .init(
                    "segment", "unknown segment \(quoted(s)); use dimension:value with a dimension of \(segments.map(\.rawValue).joined(separator: ", "))")
            }
            segment = Segment(dimension: dim, value: parts[1])
        }
        let from = try minute(q, "from"), to = try minute(q, "to")
        guard to > from else { throw .init("to", "must be after from") }
        guard to - from <= maxDays * 1440 else { throw .init("to", "the range is over the limit of \(maxDays) days") }
        var bucket: Bucket? = nil
        if let b = q["bucket"] {
            guard let v = Bucket(rawValue: b) else {
                throw .init("bucket", "unknown bucket \(quoted(b)); known: \(Bucket.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard (to - from) / v.minutes <= maxBuckets else { throw .init("bucket", "more than \(maxBuckets) buckets; choose a longer bucket") }
            bucket = v
        }
        var daypart: String? = nil
        if let d = q["daypart"] {
            guard dayparts.dayparts.contains(where: { $0.name == d }) else {
                throw .init("daypart", "unknown daypart \(quoted(d)); known: \(dayparts.dayparts.map(\.name).joined(separator: ", "))")
            }
            daypart = d
        }
        let channels = q["channels"].map { $0.split(separator: ",").map(String.init) }
        if let channels, channels.isEmpty || channels.contains(where: \.isEmpty) { throw .init("channels", "a comma-separated list of channel ids") }
        var measures = Measure.allCases
        var explicit = false
        if let m = q["measures"] {
            explicit = true
            measures = []
            for name in m.split(separator: ",", omittingEmptySubsequences: false) {
                guard let v = Measure(rawValue: String(name)) else {
                    throw .init("measures", "unknown measure \(quoted(String(name))); known: \(Measure.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                if !measures.contains(v) { measures.append(v) }
            }
        }
        var modes = Set(ViewingMode.allCases)
        if let m = q["modes"] {
            modes = []
            for name in m.split(separator: ",", omittingEmptySubsequences: false) {
                guard let v = ViewingMode(rawValue: String(name)) else {
                    throw .init("modes", "unknown mode \(quoted(String(name))); known: \(ViewingMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                modes.insert(v)
            }
        }
        let universe =
            try q["universe"].map { u throws(RatingsQueryError) in
                guard let v = Universe(rawValue: u) else { throw .init("universe", "unknown universe \(quoted(u)); known: active, registered") }
                return v
            } ?? .active
        let format =
            try q["format"].map { f throws(RatingsQueryError) in
                guard let v = Format(rawValue: f) else { throw .init("format", "unknown format \(quoted(f)); known: json, csv") }
                return v
            } ?? .json
        var top: Int? = nil
        if let t = q["top"] {
            guard let v = Int(t), (1...1000).contains(v) else { throw .init("top", "an integer from 1 to 1000") }
            top = v
        }
        var query = RatingsQuery(
            from: from, to: to, bucket: bucket, daypart: daypart, segment: segment, channels: channels, measures: measures, modes: modes,
            universe: universe, top: top, format: format)
        // Reach is exact over whole hours, for all modes together. Asked for explicitly, anything
        // else is refused; by default those measures are left out.
        let reachProblem: (String, String)? =
            if modes != Set(ViewingMode.allCases) {
                ("modes", "reach and ATV are kept for all modes together; leave modes out to get them")
            } else if from % 60 != 0 {
                ("from", "reach and ATV need whole hours: from must be on the hour")
            } else if to % 60 != 0 {
                ("to", "reach and ATV need whole hours: to must be on the hour")
            } else if let bucket, bucket.minutes < 60 {
                ("bucket", "reach and ATV need buckets of an hour or a day")
            } else { nil }
        if let problem = reachProblem {
            if explicit && query.wantsReach { throw .init(problem.0, problem.1) }
            query.measures.removeAll { $0.needsReach }
        }
        return query
    }

    static func minute(_ q: [String: String], _ name: String) throws(RatingsQueryError) -> Int64 {
        guard let s = q[name] else { throw .init(name, "required: an ISO 8601 time such as 2026-12-01T00:00:00Z") }
        // The same ISO rules as every other route (fractional seconds accepted).
        guard let ms = ISOTime.millis(s) else {
            throw .init(name, "malformed time \(quoted(s)); use ISO 8601 such as 2026-12-01T00:00:00Z")
        }
        // Before the epoch there is no viewing, and minute numbers would be negative.
        guard ms >= 0 else { throw .init(name, "before 1970-01-01T00:00:00Z") }
        guard ms % RatingsParameters.minuteMs == 0 else { throw .init(name, "must be on a whole minute") }
        return ms / RatingsParameters.minuteMs
    }

    static func quoted(_ s: String) -> String { "'\(s.prefix(64))'" }

    /// The selections of the answer: one per bucket (or one for the whole range), each cut to
    /// the daypart when one is asked for.
    package func selections(_ dayparts: DaypartSchedule) -> [(from: Int64, to: Int64, selection: MinuteSelection)] {
        let step = bucket?.minutes ?? (to - from)
        var out: [(Int64, Int64, MinuteSelection)] = []
        var start = bucket.map { floorDiv(from, $0.minutes) * $0.minutes } ?? from
        while start < to {
            let range = max(start, from)..<min(start + step, to)
            let selection = daypart.flatMap { dayparts.selection(of: $0, within: range) } ?? (daypart == nil ? MinuteSelection(range) : MinuteSelection([]))
            out.append((range.lowerBound, range.upperBound, selection))
            start += step
        }
        return out
    }
}

/// A refused ratings question: the parameter, and why.
package struct RatingsQueryError: Error, Equatable, CustomStringConvertible {
    package var parameter: String
    package var message: String
    init(_ parameter: String, _ message: String) {
        self.parameter = parameter
        self.message = message
    }
    package var description: String { "\(parameter): \(message)" }
}
