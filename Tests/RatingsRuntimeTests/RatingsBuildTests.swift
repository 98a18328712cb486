import ArgusStore
import ArgusTestSupport
import Foundation
import Logging
import MongoStore
import Ratings
import Testing

@testable import RatingsRuntime

/// The builder and the query service against the real store (MONGODB_URI): stored events in,
/// stored rollups, answers out, equal to the measures computed straight from the same events.
@Suite("Ratings build")
struct RatingsBuildTests {
    func withStore(_ body: (MongoStore) async throws -> Void) async throws {
        guard let uri = ProcessInfo.processInfo.environment["MONGODB_URI"] else {
            Issue.record("MONGODB_URI is not set: run through scripts/test")
            return
        }
        let db = "rat_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let store = try MongoStore(uri: uri, database: db, threads: 2, logger: Logger(label: "t"))
        try await Schema.ensureIndexes(store)
        do { try await body(store) } catch {
            try? await store.dropDatabase(); await store.shutdown(); throw error
        }
        try await store.dropDatabase()
        await store.shutdown()
    }

    static let day: Int64 = 20_423  // 2025-12-01
    static let dayStart = day * 86_400_000

    /// Random viewing of `boxes` boxes around one day: clocks off by up to ±3 h, two boots each,
    /// tunes, standby, leave, some time-shifted viewing.
    static func events(seed: UInt64, boxes: Int) -> [Document] {
        var rng = SplitMix64(seed: seed)
        var docs: [Document] = []
        let channels = ["ch1", "ch2", "ch3", "ch4"]
        for b in 0..<boxes {
            let device = "box-\(b)"
            for boot in 0..<2 {
                let offset = Int64.random(in: -10_800_000...10_800_000, using: &rng)
                var hubTime = dayStart - 3_600_000 + Int64(boot) * 43_200_000 + Int64.random(in: 0...3_600_000, using: &rng)
                for seq in 0..<Int64.random(in: 5...40, using: &rng) {
                    hubTime += Int64.random(in: 1_000...1_800_000, using: &rng)
                    let roll = Int.random(in: 0..<20, using: &rng)
                    var d: Document = [
                        "_id": .string("\(device)|b\(boot)|\(seq)"), "d": .string(device), "b": .string("b\(boot)"), "s": .int64(seq),
                        "t": .date(Date(millis: hubTime - offset)), "r": .date(Date(millis: hubTime + Int64.random(in: 0...2_000, using: &rng))),
                        "o": .int64(offset),
                    ]
                    switch roll {
                    case 0: d["e"] = "standby_on"
                    case 1: d["e"] = "standby_off"
                    case 2: d["e"] = "leave"
                    case 3: d["e"] = "play_start"
                    default:
                        d["e"] = "tune"
                        d["ch"] = .string(channels[Int.random(in: 0..<channels.count, using: &rng)])
                        if roll == 4 { d["mode"] = "timeshift" }
                    }
                    docs.append(d)
                }
            }
        }
        // Two boxes whose only ≥ 3-minute runs cross an hour's edge: 12:59–13:01 (1 + 2 minutes)
        // and 14:58–15:00 (2 + 1), so daily reach3 depends on the stored edge runs.
        let edges: [(String, Int64, Int64)] = [("edge-a", 778 * 60_000 + 45_000, 782 * 60_000), ("edge-b", 897 * 60_000 + 45_000, 901 * 60_000)]
        for (device, start, end) in edges {
            let t0: Date = Date(millis: dayStart + start)
            let t1: Date = Date(millis: dayStart + end)
            var tune: Document = ["_id": .string(device + "|b|1"), "d": .string(device), "b": "b", "s": .int64(1), "o": .int64(0)]
            tune["t"] = .date(t0)
            tune["r"] = .date(t0)
            tune["e"] = "tune"
            tune["ch"] = "ch1"
            var leave: Document = ["_id": .string(device + "|b|2"), "d": .string(device), "b": "b", "s": .int64(2), "o": .int64(0)]
            leave["t"] = .date(t1)
            leave["r"] = .date(t1)
            leave["e"] = "leave"
            docs.append(tune)
            docs.append(leave)
        }
        return docs
    }

    @Test func storedRollupsAnswerExactlyWhatTheEventsSay() async throws {
        try await withStore { store in
            let docs = Self.events(seed: 7, boxes: 40)
            _ = try await store.collection(Schema.events).insertMany(docs)
            let now = Self.dayStart + 3 * 86_400_000
            let builder = RatingsBuilder(store: store, node: "n1", logger: Logger(label: "t"), now: { now })
            var known: [String: BoxIndex] = [:]
            try await builder.build(day: Self.day, known: &known)
            let dayparts = try DaypartSchedule.parse(DaypartSchedule.defaultSpec)
            let service = RatingsService(store: builder.store, dayparts: dayparts) { 1000 }

            // The same credit computed straight from the documents, with no store in between.
            var byBox: [String: [StoredViewing]] = [:]
            for d in docs { if let v = StoredViewing(d) { byBox[v.device, default: []].append(v) } }
            let dayMinutes = (Self.dayStart / 60_000)..<((Self.dayStart + 86_400_000) / 60_000)
            var credits: [BoxCredits] = []
            for (device, list) in byBox {
                let c = MinuteCrediting.credits(
                    connections: StoredViewing.connections(list), horizon: Self.dayStart + 2 * 86_400_000
                ).credits.filter { dayMinutes.contains($0.minute) }
                if let i = known[device], !c.isEmpty { credits.append(BoxCredits(box: i, credits: c)) }
            }
            #expect(credits.count > 20, "the scenario credits most boxes")

            for (bucket, expectRows) in [(nil, 1), ("hour", 24)] as [(String?, Int)] {
                var q = ["from": "2025-12-01T00:00:00Z", "to": "2025-12-02T00:00:00Z", "universe": "registered"]
                if let bucket { q["bucket"] = bucket }
                let answer = try await service.answer(try RatingsQuery.parse(q, dayparts: dayparts))
                #expect(answer.series.count == expectRows && answer.universe.size == 1000 && answer.daysBuilt == 1)
                for row in answer.series {
                    let selection = MinuteSelection(Self.minute(row.from)..<Self.minute(row.to))
                    let expected = Measures.compute(Tallies.fromCredits(credits, selection: selection, universe: 1000))
                    #expect(row.channels.map(\.channel) == expected.map(\.channel))
                    for (got, want) in zip(row.channels, expected) {
                        #expect(got.boxMinutes == want.boxMinutes && got.reach == want.reach1 && got.reach3 == want.reach3)
                        #expect(got.amr == want.amr && got.ratingPct == want.rating * 100 && got.sharePct == want.share.map { $0 * 100 })
                    }
                }
            }
            // Rebuilding gives the same answer, as a new version.
            let q = try RatingsQuery.parse(["from": "2025-12-01T00:00:00Z", "to": "2025-12-02T00:00:00Z"], dayparts: dayparts)
            let first = try await service.answer(q)
            try await builder.build(day: Self.day, known: &known)
            let again = try await service.answer(q)
            #expect(first.series == again.series && first.universe == again.universe)
            #expect(try await builder.store.dayInfos(Self.day..<(Self.day + 1)).first?.version == 2)
            #expect(try await store.collection(RatingsStore.cellsName).count(["v": 1]) == 0, "the old version is deleted")
        }
    }

    @Test func onlyOneNodeHoldsTheLease() async throws {
        try await withStore { store in
            let s = RatingsStore(store: store)
            let now = Date()
            #expect(await s.acquireLease(node: "a", now: now, ttl: 60))
            #expect(await s.acquireLease(node: "b", now: now, ttl: 60) == false)
            #expect(await s.acquireLease(node: "a", now: now.addingTimeInterval(10), ttl: 60), "the holder renews")
            #expect(await s.acquireLease(node: "b", now: now.addingTimeInterval(200), ttl: 60), "an expired lease is taken over")
        }
    }

    @Test func aCorruptStoredDayIsANamedError() async throws {
        try await withStore { store in
            let s = RatingsStore(store: store)
            try await store.collection(RatingsStore.daysName).insertOne(["_id": .int64(Self.day), "v": 1, "builtAt": .date(Date()), "active": "not bits"])
            await #expect(throws: RatingsStoreError.corrupt(collection: RatingsStore.daysName, id: "\(Self.day)", field: "active")) {
                _ = try await s.dayInfos(Self.day..<(Self.day + 1))
            }
        }
    }

    static func minute(_ iso: String) -> Int64 {
        Int64((ISO8601DateFormatter().date(from: iso)?.timeIntervalSince1970 ?? 0) / 60)
    }
}
