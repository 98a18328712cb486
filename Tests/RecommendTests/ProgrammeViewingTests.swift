import Testing

@testable import Recommend

/// Programme watch time with the second programme of a run down-weighted, against a reference
/// that scans every slot for every minute.
@Suite struct ProgrammeViewingTests {
    typealias Slot = ProgrammeViewing.Slot

    @Test func theSecondProgrammeOfATuneWeighsHalfAndTheThirdAQuarter() {
        let slots = ["news": [Slot(start: 0, stop: 30, item: "News"), Slot(start: 30, stop: 60, item: "Quiz"), Slot(start: 60, stop: 90, item: "Film")]]
        // One tune at minute 20 watched to minute 69: 10 minutes of News, 30 of Quiz, 10 of Film.
        let run = (20..<70).map { (minute: Int64($0), channel: "news") }
        let w = ProgrammeViewing.weights(minutes: run, slots: slots)
        #expect(w["News"]?.weight == 10 && w["Quiz"]?.weight == 15 && w["Film"]?.weight == 2.5)
        #expect(w["Film"]?.last == 69)
        // A gap is a new tune: the quiz from minute 40 counts in full.
        let retuned = (20..<30).map { (minute: Int64($0), channel: "news") } + (40..<50).map { (minute: Int64($0), channel: "news") }
        let v = ProgrammeViewing.weights(minutes: retuned, slots: slots)
        #expect(v["News"]?.weight == 10 && v["Quiz"]?.weight == 10)
        // A minute in no slot (no guide) belongs to no programme.
        #expect(ProgrammeViewing.weights(minutes: [(minute: 95, channel: "news"), (minute: 5, channel: "sport")], slots: slots).isEmpty)
    }

    static func reference(_ minutes: [(minute: Int64, channel: String)], _ slots: [String: [Slot]]) -> [String: (weight: Double, last: Int64)] {
        var out: [String: (weight: Double, last: Int64)] = [:]
        let sorted = minutes.sorted { ($0.minute, $0.channel) < ($1.minute, $1.channel) }
        var i = 0
        while i < sorted.count {
            // One run: consecutive minutes on one channel.
            var j = i + 1
            while j < sorted.count && sorted[j].channel == sorted[i].channel && sorted[j].minute == sorted[j - 1].minute + 1 { j += 1 }
            var items: [String] = []
            for m in sorted[i..<j] {
                guard let slot = (slots[m.channel] ?? []).first(where: { $0.start <= m.minute && m.minute < $0.stop }) else { continue }
                if items.last != slot.item { items.append(slot.item) }
                var factor = 1.0
                for _ in 1..<items.count { factor *= 0.5 }
                var e = out[slot.item] ?? (0, m.minute)
                e.weight += factor
                e.last = max(e.last, m.minute)
                out[slot.item] = e
            }
            i = j
        }
        return out
    }

    @Test func weightsEqualTheReferenceOnRandomViewing() {
        for seed in (0..<200).map({ 0x9B_0000 + UInt64($0) }) {
            var rng = SplitMix64(seed: seed)
            var slots: [String: [Slot]] = [:]
            for ch in ["a", "b", "c"] {
                var t = Int64(rng.next() % 10)
                var list: [Slot] = []
                while t < 300 {
                    let len = Int64(5 + rng.next() % 40)
                    if rng.next() % 5 != 0 { list.append(Slot(start: t, stop: t + len, item: "p\(rng.next() % 6)")) }
                    t += len + Int64(rng.next() % 3)
                }
                slots[ch] = list
            }
            var minutes: [(minute: Int64, channel: String)] = []
            var t = Int64(rng.next() % 20)
            while t < 300 {
                let ch = ["a", "b", "c"][Int(rng.next() % 3)]
                let len = Int64(1 + rng.next() % 60)
                for m in t..<min(t + len, 300) { minutes.append((m, ch)) }
                t += len + Int64(rng.next() % 3)
            }
            let got = ProgrammeViewing.weights(minutes: minutes.shuffled(using: &rng), slots: slots)
            let expected = Self.reference(minutes, slots)
            #expect(got.count == expected.count, "seed \(seed)")
            for (item, e) in expected {
                #expect(got[item].map { abs($0.weight - e.weight) < 1e-9 && $0.last == e.last } == true, "seed \(seed) item \(item)")
            }
        }
    }
}
