import ArgusTestSupport
import Foundation
import Ratings
import Testing

@testable import RatingsRuntime

/// The hand-written JSON of a ratings answer is the document `JSONEncoder` makes from its
/// `Encodable` conformance (the reference), on random answers.
@Suite struct RatingsAnswerJSONTests {
    static func text(_ rng: inout SplitMix64) -> String {
        let alphabet: [String] = ["a", "Z", "9", "\"", "\\", "/", "\n", "\t", "\u{01}", "\u{1F}", "é", "📺", "<", ",", " "]
        return (0..<Int(rng.next() % 8)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined()
    }

    static func number(_ rng: inout SplitMix64) -> Double {
        switch rng.next() % 6 {
        case 0: Double(rng.next() % 1000)
        case 1: Double(rng.next() % 1_000_000) / 7
        case 2: Double(rng.next() % 1000) * 1e-9
        case 3: -Double(rng.next() % 100) / 3
        case 4: Double(rng.next() % 1000) * 1e17
        default: Double(bitPattern: 0x3FF0_0000_0000_0000 | (rng.next() >> 12))
        }
    }

    static func optional<T>(_ rng: inout SplitMix64, _ make: (inout SplitMix64) -> T) -> T? {
        rng.next() % 3 == 0 ? nil : make(&rng)
    }

    static func row(_ rng: inout SplitMix64) -> RatingsAnswer.ChannelRow {
        let name = text(&rng)
        let measures = Measures.compute(Tallies(minutes: 1, universe: 1, allBoxMinutes: 0, channels: [name: .init()]))
        guard let m = measures.first else { preconditionFailure("one channel in, one out") }
        var c = RatingsAnswer.ChannelRow(m, [], suppressed: rng.next() % 5 == 0)
        func interval(_ rng: inout SplitMix64) -> RatingsAnswer.Interval? {
            RatingsAnswer.Interval(ConfidenceInterval(lower: number(&rng), upper: number(&rng)))
        }
        c.boxMinutes = optional(&rng) { Int64($0.next() % 10_000_000_000) }
        c.amr = optional(&rng, number)
        c.ratingPct = optional(&rng, number)
        c.ratingInterval = rng.next() % 3 == 0 ? nil : interval(&rng)
        c.sharePct = optional(&rng, number)
        c.reach = optional(&rng) { Int($0.next() % 100_000) }
        c.reachPct = optional(&rng, number)
        c.reachInterval = rng.next() % 3 == 0 ? nil : interval(&rng)
        c.reach3 = optional(&rng) { Int($0.next() % 100_000) }
        c.reach3Pct = optional(&rng, number)
        c.reach3Interval = rng.next() % 3 == 0 ? nil : interval(&rng)
        c.atvMinutes = optional(&rng, number)
        return c
    }

    static func answer(_ rng: inout SplitMix64) -> RatingsAnswer {
        RatingsAnswer(
            from: text(&rng), to: text(&rng), bucket: optional(&rng, text), daypart: optional(&rng, text), segment: optional(&rng, text),
            modes: (0..<Int(rng.next() % 4)).map { _ in text(&rng) }, measures: (0..<Int(rng.next() % 4)).map { _ in text(&rng) },
            universe: .init(kind: text(&rng), size: Int(rng.next() % 200_000)), sampleSize: Int(rng.next() % 200_000),
            k: Int(rng.next() % 10), confidence: text(&rng), daysBuilt: Int(rng.next() % 40), daysInRange: Int(rng.next() % 40),
            notCredited: .init(skewed: Int(rng.next() % 1000), late: Int(rng.next() % 1000)), builtAt: optional(&rng, text),
            series: (0..<Int(rng.next() % 4)).map { _ in
                RatingsAnswer.Row(
                    from: text(&rng), to: text(&rng), minutes: Int(rng.next() % 1441), channels: (0..<Int(rng.next() % 5)).map { _ in row(&rng) })
            })
    }

    @Test func theWrittenJSONIsTheEncodersDocument() throws {
        for seed in (0..<300).map({ 0x15_0000 + UInt64($0) }) {
            var rng = SplitMix64(seed: seed)
            let a = Self.answer(&rng)
            let written = try JSONSerialization.jsonObject(with: Data(a.json))
            let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(a))
            #expect((written as? NSDictionary) == (encoded as? NSDictionary), "seed \(seed)")
            #expect(written is NSDictionary, "seed \(seed)")
        }
    }
}

/// CSV figures are written as `String(format: "%.6f")` writes them.
@Suite struct RatingsCSVFigureTests {
    @Test func sixDecimalsAsFoundationWritesThem() {
        var rng = SplitMix64(seed: 0x6D_0006)
        var values: [Double] = [
            0, -0.0, 0.5, 1e-7, 0.0000005, 0.0000015, 2.5e-6, 99.9999995, 100, 123_456_789.123_456_789, -3.25, 1e300, .infinity, -.infinity, .nan,
        ]
        for _ in 0..<2000 { values.append(RatingsAnswerJSONTests.number(&rng)) }
        for v in values { #expect(RatingsAnswer.fixed6(v) == String(format: "%.6f", v), "\(v)") }
    }
}
