/// A named part of the day: local hours `[startHour, endHour)`, wrapping past midnight when `endHour` ≤
/// `startHour` (e.g. `late 23-06`).
public struct Daypart: Sendable, Hashable {
    public var name: String
    public var startHour: Int
    /// 1…24; 24 (or 0 in the text) is midnight.
    public var endHour: Int

    public init(name: String, startHour: Int, endHour: Int) {
        self.name = name
        self.startHour = startHour
        self.endHour = endHour
    }

    /// Whether local hour `hour` (0…23) is in this daypart.
    public func contains(hour: Int) -> Bool {
        startHour < endHour ? (startHour..<endHour).contains(hour) : hour >= startHour || hour < endHour
    }

    /// The hours, in order from `startHour`.
    public var hours: [Int] { (0..<24).map { (startHour + $0) % 24 }.filter { contains(hour: $0) } }

    /// The daypart's hours within one UTC day as ranges (two when it spans midnight, e.g. 23–06).
    public var hourSpans: [Range<Int>] {
        var spans: [Range<Int>] = []
        for h in (0..<24) where contains(hour: h) {
            if let last = spans.last, last.upperBound == h { spans[spans.count - 1] = last.lowerBound..<(h + 1) } else { spans.append(h..<(h + 1)) }
        }
        return spans
    }
}

/// Configurable dayparts (docs/ratings-method.md, "Dayparts"), on local time at a fixed UTC offset.
public struct DaypartSchedule: Sendable, Hashable {
    public var dayparts: [Daypart]

    /// The default: `breakfast 06-09, daytime 09-17, early_peak 17-19, peak 19-23, late 23-06`.
    public static let defaultSpec = "breakfast 06-09, daytime 09-17, early_peak 17-19, peak 19-23, late 23-06"

    /// Why a daypart spec was refused.
    public enum ParseError: Error, Sendable, Equatable {
        case empty
        /// Entry `index` (0-based) is not `NAME HH-HH`.
        case malformedEntry(index: Int, text: String)
        /// Names are 1–32 of `a-z`, `0-9`, `_`, starting with a letter.
        case invalidName(String)
        case duplicateName(String)
        /// A start hour outside 0…23 or an end hour outside 0…24.
        case hourOutOfRange(name: String, hour: Int)
        /// Start and end are the same hour: empty (or the whole day, which is no daypart).
        case emptyRange(name: String)
        /// Two dayparts both hold `hour`.
        case overlap(first: String, second: String, hour: Int)
    }

    public init(dayparts: [Daypart]) {
        self.dayparts = dayparts
    }

    /// Parses `NAME HH-HH` entries separated by commas (`-` or `–`), e.g. `DaypartSchedule.defaultSpec`.
    /// Hours not covered by any daypart are allowed.
    public static func parse(_ spec: String) throws(ParseError) -> DaypartSchedule {
        let entries = spec.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingWhitespace() }
        if entries.count == 1 && entries[0].isEmpty { throw .empty }
        var parts: [Daypart] = []
        for (index, entry) in entries.enumerated() {
            let words = entry.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let hours = words.count == 2 ? words[1].split(whereSeparator: { $0 == "-" || $0 == "–" }) : []
            guard words.count == 2, hours.count == 2, let start = Int(hours[0]), let end = Int(hours[1]),
                hours.allSatisfy({ $0.count <= 2 && $0.allSatisfy(\.isASCII) })
            else { throw .malformedEntry(index: index, text: entry) }
            let name = String(words[0])
            guard isValidName(name) else { throw .invalidName(name) }
            if parts.contains(where: { $0.name == name }) { throw .duplicateName(name) }
            guard (0...23).contains(start) else { throw .hourOutOfRange(name: name, hour: start) }
            guard (0...24).contains(end) else { throw .hourOutOfRange(name: name, hour: end) }
            let endHour = end == 0 ? 24 : end
            guard start != endHour % 24 else { throw .emptyRange(name: name) }
            let part = Daypart(name: name, startHour: start, endHour: endHour)
            for hour in part.hours {
                if let other = parts.first(where: { $0.contains(hour: hour) }) {
                    throw .overlap(first: other.name, second: name, hour: hour)
                }
            }
            parts.append(part)
        }
        return DaypartSchedule(dayparts: parts)
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first), name.unicodeScalars.count <= 32
        else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    /// The daypart holding `minute` (a clock minute, UTC) at local offset `utcOffsetMinutes`, if any.
    public func daypart(ofMinute minute: Int64, utcOffsetMinutes: Int64 = 0) -> Daypart? {
        let local = minute + utcOffsetMinutes
        let minuteOfDay = local - floorDiv(local, 1440) * 1440
        let hour = Int(minuteOfDay / 60)
        return dayparts.first { $0.contains(hour: hour) }
    }

    /// The minutes of daypart `name` within `range`, at local offset `utcOffsetMinutes`; nil for an unknown name.
    public func selection(
        of name: String, within range: Range<Int64>, utcOffsetMinutes: Int64 = 0
    ) -> MinuteSelection? {
        guard let part = dayparts.first(where: { $0.name == name }), !range.isEmpty else { return nil }
        var ranges: [Range<Int64>] = []
        let length = Int64(part.hours.count) * 60
        let firstDay = floorDiv(range.lowerBound + utcOffsetMinutes, 1440) - 1
        let lastDay = floorDiv(range.upperBound + utcOffsetMinutes, 1440)
        for day in firstDay...lastDay {
            let start = day * 1440 + Int64(part.startHour) * 60 - utcOffsetMinutes
            let lo = max(start, range.lowerBound)
            let hi = min(start + length, range.upperBound)
            if lo < hi { ranges.append(lo..<hi) }
        }
        return MinuteSelection(ranges)
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
