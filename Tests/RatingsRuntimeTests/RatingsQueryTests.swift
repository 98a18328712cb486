import Ratings
import RatingsRuntime
import Testing

/// Parsing and checking ratings questions: every refusal names its parameter.
@Suite struct RatingsQueryTests {
    let dayparts = (try? DaypartSchedule.parse(DaypartSchedule.defaultSpec)) ?? DaypartSchedule(dayparts: [])

    func parse(_ q: [String: String]) throws(RatingsQueryError) -> RatingsQuery {
        try RatingsQuery.parse(q, dayparts: dayparts)
    }

    func refusal(_ q: [String: String]) -> RatingsQueryError? {
        do {
            _ = try parse(q)
            return nil
        } catch { return error }
    }

    let day = ["from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"]
    func with(_ extra: [String: String]) -> [String: String] { day.merging(extra) { $1 } }

    @Test func aPlainDayParsesWithEveryMeasure() throws {
        let q = try parse(day)
        #expect(q.to - q.from == 1440 && q.from % 1440 == 0)
        #expect(q.measures == RatingsQuery.Measure.allCases && q.universe == .active && q.format == .json && q.bucket == nil)
        #expect(q.selections(dayparts).count == 1)
    }

    @Test(arguments: [
        (["to": "2026-12-02T00:00:00Z"], "from"),
        (["from": "2026-12-01T00:00:00Z"], "to"),
        (["from": "yesterday", "to": "2026-12-02T00:00:00Z"], "from"),
        (["from": "2026-12-01T00:00:30Z", "to": "2026-12-02T00:00:00Z"], "from"),
        (["from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"], "to"),
        (["from": "2026-12-02T00:00:00Z", "to": "2026-12-02T00:00:00Z"], "to"),
        (["from": "2026-10-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"], "to"),
        // Found by the API fuzzer: before the epoch (minute numbers went negative, and the
        // export answered 503), and a day that does not exist (February 30 rolled over to March).
        (["from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"], "from"),
        (["from": "1969-12-31T00:00:00Z", "to": "1970-01-01T00:00:00Z"], "from"),
        (["from": "2026-02-30T00:00:00Z", "to": "2026-03-03T00:00:00Z"], "from"),
        (["from": "2026-12-01T00:00:00Z", "to": "2026-12-01T24:00:00Z"], "to"),
    ])
    func badTimesNameTheirParameter(q: [String: String], parameter: String) {
        #expect(refusal(q)?.parameter == parameter)
    }

    @Test(arguments: [
        (["bucket": "week"], "bucket"),
        (["daypart": "brunch"], "daypart"),
        (["measures": "amr,popularity"], "measures"),
        (["measures": ""], "measures"),
        (["modes": "live,vod"], "modes"),
        (["universe": "everyone"], "universe"),
        (["segment": "region=north"], "segment"),
        (["top": "0"], "top"),
        (["top": "ten"], "top"),
        (["format": "xml"], "format"),
        (["channels": ""], "channels"),
        (["colour": "blue"], "colour"),
        // Reach asked for explicitly where it cannot be exact.
        (["measures": "reach", "bucket": "15min"], "bucket"),
        (["measures": "reach3", "modes": "live"], "modes"),
        (["measures": "atv", "from": "2026-12-01T00:30:00Z"], "from"),
    ])
    func badParametersAreNamed(extra: [String: String], parameter: String) {
        let r = refusal(with(extra))
        #expect(r?.parameter == parameter, "\(extra) gave \(String(describing: r))")
        #expect(r?.message.isEmpty == false)
    }

    @Test func segmentsAreDimensionColonValueOfAConfiguredDimension() throws {
        let q = try RatingsQuery.parse(with(["segment": "tag:region:north"]), dayparts: dayparts, segments: [.model, .tag])
        #expect(q.segment == RatingsQuery.Segment(dimension: .tag, value: "region:north") && q.segment?.key == "tag=region:north")
        for bad in ["firmware:1.0", "model", "model:", "colour:red"] {
            #expect(throws: RatingsQueryError.self) { try RatingsQuery.parse(with(["segment": bad]), dayparts: dayparts, segments: [.model, .tag]) }
        }
    }

    @Test func tooManyBucketsIsRefused() {
        let q = ["from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "bucket": "minute"]
        #expect(refusal(q)?.parameter == "bucket")
    }

    @Test func reachIsLeftOutByDefaultWhereItCannotBeExact() throws {
        let minuteBuckets = try parse(with(["bucket": "15min"]))
        #expect(minuteBuckets.measures == [.amr, .rating, .share])
        let liveOnly = try parse(with(["modes": "live"]))
        #expect(liveOnly.measures == [.amr, .rating, .share] && liveOnly.modes == [.live])
        let hourly = try parse(with(["bucket": "hour"]))
        #expect(hourly.measures == RatingsQuery.Measure.allCases)
    }

    @Test func bucketsAndDaypartsCutTheRange() throws {
        let hourly = try parse(with(["bucket": "hour"]))
        let s = hourly.selections(dayparts)
        #expect(s.count == 24 && s.allSatisfy { $0.selection.count == 60 })
        let peak = try parse(with(["daypart": "peak"]))
        let p = peak.selections(dayparts)
        #expect(p.count == 1 && p[0].selection.count == 4 * 60)
        let peakHourly = try parse(with(["daypart": "peak", "bucket": "hour"]))
        #expect(peakHourly.selections(dayparts).filter { $0.selection.count > 0 }.count == 4)
    }

    @Test func csvCellsAreQuotedAndNeverFormulas() {
        #expect(RatingsAnswer.csvField("bbc1") == "bbc1")
        #expect(RatingsAnswer.csvField("a,b") == "\"a,b\"")
        #expect(RatingsAnswer.csvField("=cmd") == "'=cmd")
        #expect(RatingsAnswer.csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
    }
}
