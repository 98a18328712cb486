/// XMLTV times: `YYYYMMDDhhmmss ±HHMM`.
///
/// Accepted: 8, 10, 12 or 14 digits (date, then hours, minutes, seconds; missing parts are 0), then an
/// optional offset `+HHMM` / `-HHMM` (whitespace before it optional). No offset means UTC.
/// Named zones (`BST`) and out-of-range fields are rejected.
public enum XMLTVTime {
    /// Milliseconds since the Unix epoch (UTC) for an XMLTV time, or nil when it is not one.
    public static func parse(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
        let digitsStart = i
        while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        let digits = Array(bytes[digitsStart..<i])
        guard [8, 10, 12, 14].contains(digits.count) else { return nil }
        func field(_ from: Int, _ length: Int) -> Int {
            guard from + length <= digits.count else { return 0 }
            return number(digits[from..<(from + length)])
        }
        let year = field(0, 4), month = field(4, 2), day = field(6, 2)
        let hour = field(8, 2), minute = field(10, 2), second = field(12, 2)
        guard (1...12).contains(month), (1...daysInMonth(year: year, month: month)).contains(day),
            hour < 24, minute < 60, second < 60
        else { return nil }

        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
        var offsetSeconds = 0
        if i < bytes.count {
            let sign = bytes[i]
            guard sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") else { return nil }
            let rest = bytes[(i + 1)...]
            guard rest.count >= 4, rest.prefix(4).allSatisfy(isDigit) else { return nil }
            let offHours = number(rest.prefix(2)), offMinutes = number(rest.dropFirst(2).prefix(2))
            guard offHours <= 14, offMinutes < 60 else { return nil }
            var j = rest.startIndex + 4
            while j < bytes.count, bytes[j] == 0x20 || bytes[j] == 0x09 { j += 1 }
            guard j == bytes.count else { return nil }
            offsetSeconds = (offHours * 3600 + offMinutes * 60) * (sign == UInt8(ascii: "-") ? -1 : 1)
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        let localSeconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        return (localSeconds - Int64(offsetSeconds)) * 1000
    }

    /// `2026-12-03T18:00:00Z` for ms since the epoch (seconds precision), for messages.
    public static func iso8601(_ millis: Int64) -> String {
        let seconds = floorDiv(millis, 1000)
        let days = floorDiv(seconds, 86_400)
        let secondOfDay = seconds - days * 86_400
        let (y, m, d) = civilFromDays(days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let time = "\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))"
        return "\(y)-\(two(m))-\(two(d))T\(time)Z"
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    private static func number<C: Collection>(_ digits: C) -> Int where C.Element == UInt8 {
        digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }

    private static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// Floor division (rounds toward negative infinity).
func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

/// Ceiling division (rounds toward positive infinity).
func ceilDiv(_ a: Int64, _ b: Int64) -> Int64 {
    -floorDiv(-a, b)
}
