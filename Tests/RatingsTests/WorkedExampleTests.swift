import Ratings
import Testing

/// The worked example of docs/ratings-method.md, recomputed: every number the doc states is checked here.
@Suite struct WorkedExampleTests {
    /// 2026-11-30 20:00:00 UTC, in ms; the example's minutes are 20:00 … 20:03.
    static let t0: Int64 = 1_796_068_800_000
    static let m0 = minuteIndex(t0)

    static func at(_ minutes: Int64, _ seconds: Int64) -> Int64 { t0 + minutes * 60_000 + seconds * 1000 }

    static func log(clockError: Int64, hello: Int64, _ events: [(Int64, RatedKind)]) -> ConnectionLog {
        ConnectionLog(
            helloBoxTime: hello + clockError, helloReceivedAt: hello,
            events: events.map { RatedEvent(boxTime: $0.0 + clockError, receivedAt: $0.0 + 500, kind: $0.1) })
    }

    static let threeHours: Int64 = 3 * 3_600_000
    static let a = log(
        clockError: 0, hello: at(-1, 50),
        [
            (at(0, 0), .tune(channel: "one")), (at(0, 7), .tune(channel: "two")), (at(1, 40), .tune(channel: "one")),
            (at(3, 30), .standbyOn),
        ])
    static let b = log(
        clockError: -threeHours, hello: at(-2, 0), [(at(0, 30), .tune(channel: "two")), (at(2, 45), .leave)])
    static let c = log(
        clockError: 0, hello: at(0, 0),
        [(at(1, 10), .tune(channel: "one")), (at(1, 35), .tune(channel: "two")), (at(3, 0), .standbyOn)])
    static let horizon = at(10, 0)

    static func credits(_ log: ConnectionLog) -> [String] {
        MinuteCrediting.credits(connections: [log], horizon: horizon).credits.map {
            "20:0\($0.minute - m0) \($0.channel)"
        }
    }

    @Test func sessions() {
        let placed = ClockCorrection.place([Self.b], parameters: .default)
        #expect(placed.events.first?.time == Self.at(0, 30))  // box B's 17:00:30 is the hub's 20:00:30
        let a = Sessionizer.sessions(
            ClockCorrection.place([Self.a], parameters: .default).events, horizon: Self.horizon)
        #expect(
            a == [
                TuningSession(channel: "two", mode: .live, start: Self.at(0, 7), end: Self.at(1, 40)),
                TuningSession(channel: "one", mode: .live, start: Self.at(1, 40), end: Self.at(3, 30)),
            ])
    }

    @Test func minuteCredit() {
        #expect(Self.credits(Self.a) == ["20:00 two", "20:01 two", "20:02 one", "20:03 one"])
        #expect(Self.credits(Self.b) == ["20:00 two", "20:01 two", "20:02 two"])
        #expect(Self.credits(Self.c) == ["20:02 two"])
    }

    @Test func measures() throws {
        let boxes: [BoxCredits] = [Self.a, Self.b, Self.c].enumerated().map {
            BoxCredits(
                box: BoxIndex($0.offset),
                credits: MinuteCrediting.credits(connections: [$0.element], horizon: Self.horizon).credits)
        }
        let selection = MinuteSelection(Self.m0..<(Self.m0 + 4))
        let tallies = Tallies.fromCredits(boxes, selection: selection, universe: 5)
        let m = Measures.compute(tallies)
        #expect(m.map(\.channel) == ["one", "two"])
        let one = m[0]
        let two = m[1]
        #expect(two.boxMinutes == 6 && one.boxMinutes == 2 && tallies.allBoxMinutes == 8)
        #expect(two.amr == 1.5 && one.amr == 0.5)
        #expect(close(two.rating, 0.3) && close(one.rating, 0.1))
        #expect(two.share == 0.75 && one.share == 0.25)
        #expect(two.reach1 == 3 && two.reach1Rate == 0.6 && one.reach1 == 1 && one.reach1Rate == 0.2)
        #expect(two.reach3 == 1 && two.reach3Rate == 0.2 && one.reach3 == 0)
        #expect(two.atvMinutes == 2 && one.atvMinutes == 2)
        try expectInterval(two.ratingInterval, 0.0726, 0.7012)
        try expectInterval(one.ratingInterval, 0.0105, 0.5371)
        try expectInterval(two.reach1Interval, 0.2307, 0.8824)
        try expectInterval(two.reach3Interval, 0.0362, 0.6245)
        try expectInterval(one.reach3Interval, 0, 0.4345)
        #expect(Cell(two.rating, base: two.base) == .value(two.rating))
        #expect(Cell(two.rating, base: two.base, k: 6) == .suppressed)
    }

    func close(_ a: Double, _ b: Double, _ tolerance: Double = 1e-12) -> Bool { abs(a - b) <= tolerance }

    func expectInterval(_ i: ConfidenceInterval?, _ lower: Double, _ upper: Double) throws {
        let i = try #require(i)
        #expect(abs(i.lower - lower) < 0.00005 && abs(i.upper - upper) < 0.00005, "\(i)")
    }
}
