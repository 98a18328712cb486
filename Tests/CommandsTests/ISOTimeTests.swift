import ArgusTestSupport
import Foundation
import Testing

@testable import Commands

/// ``ISOTime``: an ISO 8601 time whose calendar fields exist as written (the API fuzzer found
/// `2026-02-30` taken as March 2).
@Suite struct ISOTimeTests {
    @Test(arguments: [
        "2026-02-30T00:00:00Z", "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z", "2026-12-00T00:00:00Z", "2026-12-01T24:00:00Z", "2026-12-01T23:60:00Z", "2026-12-01T23:59:60Z",
        "2026-12-01", "yesterday", "", "2026-1-01T00:00:00Z",
    ])
    func aTimeThatDoesNotExistIsRefused(s: String) {
        #expect(ISOTime.date(s) == nil)
    }

    @Test(arguments: [
        ("2024-02-29T00:00:00Z", 1_709_164_800_000), ("2000-02-29T12:00:00Z", 951_825_600_000),
        ("2026-12-31T23:59:59Z", 1_798_761_599_000), ("2026-12-01T01:00:00+01:00", 1_796_083_200_000),
        ("2026-12-01T00:00:00.250Z", 1_796_083_200_250),
    ])
    func aRealTimeIsRead(s: String, millis: Int64) {
        #expect(ISOTime.millis(s) == millis)
    }

    /// Property: the fields exist exactly when a Gregorian calendar gives back the same fields
    /// for them (the brute-force reference), over seeded random fields, many of them out of range.
    @Test func fieldsExistAgreesWithTheCalendar() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        var rng = SplitMix64(seed: 2026_12_03)
        for _ in 0..<20_000 {
            let f = [
                Int.random(in: 1600...2400, using: &rng), Int.random(in: 0...13, using: &rng), Int.random(in: 0...32, using: &rng),
                Int.random(in: 0...24, using: &rng), Int.random(in: 0...60, using: &rng), Int.random(in: 0...60, using: &rng),
            ]
            let s = String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", f[0], f[1], f[2], f[3], f[4], f[5])
            let c = DateComponents(year: f[0], month: f[1], day: f[2], hour: f[3], minute: f[4], second: f[5])
            let exists =
                calendar.date(from: c).map { d in
                    let back = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: d)
                    return [back.year, back.month, back.day, back.hour, back.minute, back.second] == f.map { Optional($0) }
                } ?? false
            #expect(ISOTime.fieldsExist(s) == exists, "\(s)")
            #expect((ISOTime.date(s) != nil) == exists, "\(s)")
        }
    }
}
