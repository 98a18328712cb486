import Foundation
import Ratings

/// SplitMix64: small, seeded, the same sequence on every machine.
struct BenchRandom {
    var state: UInt64

    init(_ seeds: UInt64...) {
        state = 0x9E37_79B9_7F4A_7C15
        for s in seeds { state = Self.mix(state ^ s) }
    }

    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// Uniform in [0, n).
    mutating func below(_ n: Int64) -> Int64 { Int64(next() % UInt64(n)) }
}

/// What the synthetic fleet looks like (docs/benchmarks.md, "Ratings queries").
struct FleetShape: Sendable {
    var boxes: Int
    var channels: Int
    var seed: UInt64
    /// The channel (1-based index) that goes dark for an hour on `outageDay`.
    var outageChannel: Int
    var outageDay: Int64
    var outageHour: Int64
    /// Boxes 0..<tinyModelBoxes are the `m-tiny` model: a segment below k, so suppressed.
    var tinyModelBoxes = 3

    static let models = ["m-a", "m-b", "m-c"]
    static let tinyModel = "m-tiny"
    static let minSessionMs: Int64 = 120_000
    /// Gaps between one box's sessions are at least this, so no clock minute is touched by two
    /// sessions and the peer's minute credit is a per-session rule (the hub applies BARB's rule).
    static let minGapMs: Int64 = 61_000

    func channelName(_ index: Int) -> String { Self.channelName(index) }
    static func channelName(_ index: Int) -> String { "ch" + String(repeating: "0", count: max(0, 3 - "\(index)".count)) + "\(index)" }
    static func deviceID(_ box: Int) -> String { "bench-" + String(repeating: "0", count: max(0, 6 - "\(box)".count)) + "\(box)" }

    func model(of box: Int) -> String {
        if box < tinyModelBoxes { return Self.tinyModel }
        var r = BenchRandom(seed, 0x6D6F_6465_6C, UInt64(box))
        let u = r.unit()
        return u < 0.5 ? Self.models[0] : u < 0.8 ? Self.models[1] : Self.models[2]
    }
}

/// One box's session: channel index (1-based), mode, [start, end) in ms since 1970.
struct BenchSession: Sendable {
    var channel: Int
    var timeshift: Bool
    var start: Int64
    var end: Int64
}

/// Zipf channel popularity (s = 1) as a cumulative table.
struct Zipf {
    let cumulative: [Double]

    init(_ n: Int, s: Double = 1.0) {
        var acc = 0.0
        var c: [Double] = []
        for k in 1...max(1, n) {
            acc += 1.0 / pow(Double(k), s)
            c.append(acc)
        }
        cumulative = c.map { $0 / acc }
    }

    /// A 1-based channel index.
    func sample(_ u: Double) -> Int {
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo + 1
    }
}

/// The viewing of one box on one UTC day: a few non-overlapping sessions, starts drawn from an
/// evening-peaked day curve, channels from the Zipf table, an hour's outage on one channel.
struct DayViewing {
    let shape: FleetShape
    let zipf: Zipf
    /// Relative weight of each UTC hour as a start hour: low at night, a peak from 19 to 22.
    static let hourWeights: [Double] = [
        2, 1, 0.5, 0.3, 0.3, 0.5, 2, 4, 4, 3, 3, 3, 4, 4, 3, 3, 4, 6, 9, 14, 16, 15, 10, 5,
    ]
    let hourCumulative: [Double]

    init(shape: FleetShape) {
        self.shape = shape
        zipf = Zipf(shape.channels)
        var acc = 0.0
        var c: [Double] = []
        for w in Self.hourWeights {
            acc += w
            c.append(acc)
        }
        hourCumulative = c.map { $0 / acc }
    }

    func sessions(box: Int, day: Int64) -> [BenchSession] {
        var r = BenchRandom(shape.seed, UInt64(bitPattern: day), UInt64(box))
        // Some boxes are off all day.
        guard r.unit() < 0.85 else { return [] }
        let dayMs: Int64 = 86_400_000
        let dayStart = day * dayMs, dayEnd = dayStart + dayMs
        let count = 1 + Int(r.below(5))
        var starts: [Int64] = []
        for _ in 0..<count {
            let u = r.unit()
            let hour = Int64(hourCumulative.firstIndex { $0 >= u } ?? 23)
            starts.append(dayStart + hour * 3_600_000 + r.below(3_600_000))
        }
        starts.sort()
        var out: [BenchSession] = []
        var free = dayStart
        let outageStart = shape.outageDay == day ? dayStart + shape.outageHour * 3_600_000 : Int64.min
        for s in starts {
            let start = max(s, free)
            // Exponential lengths, mean 45 minutes, at most 3.5 h (below the 4 h capping).
            let length = min(Int64(-log(1 - r.unit()) * 2_700_000), 12_600_000)
            var end = min(start + max(length, FleetShape.minSessionMs), dayEnd)
            let channel = zipf.sample(r.unit())
            let timeshift = r.unit() < 0.08
            if channel == shape.outageChannel && start < outageStart + 3_600_000 && end > outageStart {
                end = min(end, outageStart)
            }
            guard end - start >= FleetShape.minSessionMs else { continue }
            out.append(BenchSession(channel: channel, timeshift: timeshift, start: start, end: end))
            free = end + FleetShape.minGapMs + r.below(600_000)
        }
        return out
    }

    /// A box's credited minutes, by the hub's own rule (BARB), from its sessions.
    func credits(_ sessions: [BenchSession], names: [String]) -> [MinuteCredit] {
        MinuteCrediting.credits(
            sessions.map { TuningSession(channel: names[$0.channel], mode: $0.timeshift ? .timeshift : .live, start: $0.start, end: $0.end) })
    }
}
