import Ratings
import Testing

@Suite struct WilsonTests {
    @Test func knownValues() throws {
        // Computed independently (Python, z = 1.959964): 1 of 10 → 0.0179 … 0.4042; 0 of 10 → 0 … 0.2775;
        // 50 of 100 → 0.4038 … 0.5962.
        for (p, n, lower, upper) in [(0.1, 10, 0.0179, 0.4042), (0.0, 10, 0.0, 0.2775), (0.5, 100, 0.4038, 0.5962)] {
            let i = try #require(ConfidenceInterval.wilson(p: p, n: n))
            #expect(abs(i.lower - lower) < 0.00005 && abs(i.upper - upper) < 0.00005, "\(p) \(n) \(i)")
        }
        #expect(ConfidenceInterval.wilson(p: 0.5, n: 0) == nil)
        let full = try #require(ConfidenceInterval.wilson(p: 1, n: 20))
        #expect(full.upper == 1 && full.lower < 1)
    }
}

@Suite struct DaypartTests {
    @Test func parsesTheDefault() throws {
        let s = try DaypartSchedule.parse(DaypartSchedule.defaultSpec)
        #expect(s.dayparts.map(\.name) == ["breakfast", "daytime", "early_peak", "peak", "late"])
        #expect(s.dayparts.reduce(0) { $0 + $1.hours.count } == 24)
        #expect(s.daypart(ofMinute: 23 * 60 + 30)?.name == "late")
        #expect(s.daypart(ofMinute: 5 * 60 + 59)?.name == "late")
        #expect(s.daypart(ofMinute: 6 * 60)?.name == "breakfast")
        #expect(s.daypart(ofMinute: 16 * 60, utcOffsetMinutes: 180)?.name == "peak")  // 19:00 at UTC+3
        let late = try #require(s.selection(of: "late", within: 0..<(2 * 1440)))
        #expect(late.ranges == [0..<360, 1380..<(1440 + 360), (1440 + 1380)..<2880])
        #expect(late.count == 7 * 60 * 2)
    }

    @Test func specificErrors() {
        let cases: [(String, DaypartSchedule.ParseError)] = [
            ("", .empty),
            ("  ", .empty),
            ("breakfast 06-09,", .malformedEntry(index: 1, text: "")),
            ("breakfast 6 9", .malformedEntry(index: 0, text: "breakfast 6 9")),
            ("breakfast 06-x9", .malformedEntry(index: 0, text: "breakfast 06-x9")),
            ("Breakfast 06-09", .invalidName("Breakfast")),
            ("a 06-09, a 10-11", .duplicateName("a")),
            ("a 24-03", .hourOutOfRange(name: "a", hour: 24)),
            ("a 03-25", .hourOutOfRange(name: "a", hour: 25)),
            ("a 05-05", .emptyRange(name: "a")),
            ("a 00-24", .emptyRange(name: "a")),
            ("day 06-18, late 17-07", .overlap(first: "day", second: "late", hour: 17)),
            ("late 22-06, early 05–08", .overlap(first: "late", second: "early", hour: 5)),
        ]
        for (spec, error) in cases {
            #expect(throws: error, "\(spec)") { try DaypartSchedule.parse(spec) }
        }
    }

    @Test func acceptsDashesGapsAndMidnight() throws {
        let s = try DaypartSchedule.parse("evening 18–24,night 00-02")
        #expect(
            s.dayparts == [
                Daypart(name: "evening", startHour: 18, endHour: 24), Daypart(name: "night", startHour: 0, endHour: 2),
            ])
        #expect(s.daypart(ofMinute: 12 * 60) == nil)
    }
}

@Suite struct SuppressionTests {
    @Test func belowKIsSuppressed() {
        #expect(Cell(0.25, base: 4) == .suppressed)
        #expect(Cell(0.25, base: 5) == .value(0.25))
        #expect(Cell(7, base: 2, k: 2).value == 7)
        #expect(Cell(0.5, base: 1).text { "\($0)" } == Cell<Double>.marker)
        #expect(Cell(0.5, base: 9).text { "\($0)" } == "0.5")
    }
}

@Suite struct PseudonymousIDTests {
    @Test func rfc4231Vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let id = PseudonymousID.make(boxId: "what do ya want for nothing?", periodKey: Array("Jefe".utf8))
        #expect(id == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func periodsDoNotLink() {
        let master = Array("master-secret".utf8)
        let k1 = PseudonymousID.periodKey(master: master, period: "2026-11")
        let k2 = PseudonymousID.periodKey(master: master, period: "2026-12")
        #expect(k1 != k2 && k1.count == 32)
        #expect(
            PseudonymousID.make(boxId: "box-1", periodKey: k1) != PseudonymousID.make(boxId: "box-1", periodKey: k2))
        #expect(
            PseudonymousID.make(boxId: "box-1", periodKey: k1) == PseudonymousID.make(boxId: "box-1", periodKey: k1))
    }
}

@Suite struct ParameterTests {
    @Test func defaultsAreValidAndChecked() throws {
        try RatingsParameters.default.validate()
        #expect(throws: RatingsParameters.Invalid.capShorterThanDwell) {
            try RatingsParameters(dwellMs: 20_000, capMs: 10_000).validate()
        }
        #expect(throws: RatingsParameters.Invalid.minuteMinimumOutOfRange) {
            try RatingsParameters(minuteMinimumMs: 0).validate()
        }
        #expect(minuteIndex(-1) == -1 && minuteIndex(59_999) == 0 && minuteIndex(60_000) == 1)
    }
}
