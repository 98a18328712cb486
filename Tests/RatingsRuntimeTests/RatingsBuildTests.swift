import ArgusStore
import ArgusTestSupport
import Foundation
import Logging
import MongoStore
import Ratings
import Synchronization
import Testing

@testable import RatingsRuntime

/// The builder and the query service against the real store (MONGODB_URI): stored events in,
/// stored rollups, answers out, equal to the measures computed straight from the same events.
@Suite("Ratings build")
struct RatingsBuildTests {
    func withStore(_ body: (MongoStore) async throws -> Void) async throws {
        try await withTestStore("rat", body)
    }

    /// Two days ago: recent, so the events' TTL (90 days on the receive time) never removes
    /// them while a test runs.
    static let day: Int64 = Int64(Date().timeIntervalSince1970) / 86_400 - 2
    static let dayISO = iso(day * 1440), nextDayISO = iso((day + 1) * 1440)
    static func iso(_ minute: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(minute * 60)))
    }
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
            let service = RatingsService(store: builder.store, dayparts: dayparts) { _ in 1000 }

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
                var q = ["from": Self.dayISO, "to": Self.nextDayISO, "universe": "registered"]
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
            let q = try RatingsQuery.parse(["from": Self.dayISO, "to": Self.nextDayISO], dayparts: dayparts)
            let first = try await service.answer(q)
            try await builder.build(day: Self.day, known: &known)
            let again = try await service.answer(q)
            #expect(
                first.series == again.series && first.universe == again.universe,
                "\(first.series.first?.channels.map(\.boxMinutes) ?? []) vs \(again.series.first?.channels.map(\.boxMinutes) ?? [])")
            #expect(try await builder.store.dayInfos(Self.day..<(Self.day + 1)).first?.version == 2)
            #expect(try await store.collection(RatingsStore.cellsName).count(["v": 1]) == 0, "the old version is deleted")
        }
    }

    @Test func theLiveAudienceIsTheLastCompleteMinuteOfTodaysBuild() async throws {
        try await withStore { store in
            let docs = Self.events(seed: 3, boxes: 30)
            _ = try await store.collection(Schema.events).insertMany(docs)
            // "Now" is 20:00 on the day: the build credits up to now, open tunes included.
            let now = Self.dayStart + 20 * 3_600_000 + 30_000
            let builder = RatingsBuilder(store: store, node: "n1", logger: Logger(label: "t"), now: { now })
            var known: [String: BoxIndex] = [:]
            try await builder.build(day: Self.day, known: &known)
            let service = RatingsService(store: builder.store, dayparts: try DaypartSchedule.parse(DaypartSchedule.defaultSpec)) { _ in 0 }
            let live = try await service.live(now: now)
            let minute = now / 60_000 - 1
            var expected: [String: Int] = [:]
            var byBox: [String: [StoredViewing]] = [:]
            for d in docs { if let v = StoredViewing(d) { byBox[v.device, default: []].append(v) } }
            for (_, list) in byBox {
                // Events at or after the horizon (now) are not seen yet.
                let credits = MinuteCrediting.credits(connections: StoredViewing.connections(list), horizon: now).credits
                for c in credits where c.minute == minute { expected[c.channel, default: 0] += 1 }
            }
            let active = try await builder.store.dayInfos(Self.day..<(Self.day + 1)).first?.active.count ?? -1
            #expect(live.minute == Self.iso(Self.day * 1440 + 20 * 60 - 1) && live.universe == active && active > 0)
            #expect(Dictionary(uniqueKeysWithValues: live.channels.map { ($0.channel, $0.boxes ?? -1) }) == expected)
            #expect(!expected.isEmpty, "the scenario has viewers at 19:59")
        }
    }

    @Test func segmentsAnswerForTheirOwnBoxesOnly() async throws {
        try await withStore { store in
            let docs = Self.events(seed: 9, boxes: 30)
            _ = try await store.collection(Schema.events).insertMany(docs)
            let devices: [Document] = (0..<30).map { i in
                ["_id": .string("box-\(i)"), "model": .string("m\(i % 3)"), "firmware": "1.0", "tags": [.string("t\(i % 5)")], "revoked": false]
            }
            _ = try await store.collection(Schema.devices).insertMany(devices)
            let now = Self.dayStart + 3 * 86_400_000
            let builder = RatingsBuilder(
                store: store, node: "n1", settings: RatingsSettings(segments: [.model, .tag]), logger: Logger(label: "t"), now: { now })
            var known: [String: BoxIndex] = [:]
            try await builder.build(day: Self.day, known: &known)
            let dayparts = try DaypartSchedule.parse(DaypartSchedule.defaultSpec)
            let service = RatingsService(store: builder.store, dayparts: dayparts, segments: [.model, .tag]) { _ in 10 }
            let info = try #require(try await builder.store.dayInfos(Self.day..<(Self.day + 1)).first)
            #expect(Set(info.segments.keys) == Set((0..<3).map { "model=m\($0)" } + (0..<5).map { "tag=t\($0)" }))

            var byBox: [String: [StoredViewing]] = [:]
            for d in docs { if let v = StoredViewing(d) { byBox[v.device, default: []].append(v) } }
            let dayMinutes = (Self.dayStart / 60_000)..<((Self.dayStart + 86_400_000) / 60_000)
            for (segment, member) in [("model:m1", { (i: Int) in i % 3 == 1 }), ("tag:t2", { (i: Int) in i % 5 == 2 })] {
                var credits: [BoxCredits] = []
                for i in 0..<30 where member(i) {
                    guard let list = byBox["box-\(i)"], let index = known["box-\(i)"] else { continue }
                    let c = MinuteCrediting.credits(connections: StoredViewing.connections(list), horizon: Self.dayStart + 2 * 86_400_000)
                        .credits.filter { dayMinutes.contains($0.minute) }
                    if !c.isEmpty { credits.append(BoxCredits(box: index, credits: c)) }
                }
                let q = try RatingsQuery.parse(
                    ["from": Self.dayISO, "to": Self.nextDayISO, "segment": segment, "universe": "registered"],
                    dayparts: dayparts, segments: [.model, .tag])
                let answer = try await service.answer(q)
                let expected = Measures.compute(Tallies.fromCredits(credits, selection: MinuteSelection(dayMinutes), universe: 10))
                #expect(answer.segment == segment && answer.universe.size == 10)
                #expect(answer.series[0].channels.map(\.channel) == expected.map(\.channel))
                for (got, want) in zip(answer.series[0].channels, expected) {
                    #expect(got.boxMinutes == want.boxMinutes && got.reach == want.reach1 && got.reach3 == want.reach3, "\(segment) \(want.channel)")
                }
                let active = try await service.answer(
                    try RatingsQuery.parse(
                        ["from": Self.dayISO, "to": Self.nextDayISO, "segment": segment], dayparts: dayparts,
                        segments: [.model, .tag]))
                #expect(active.universe.size == info.segments[q.segment?.key ?? ""]?.count && active.universe.size <= 10)
            }
            // A value no box has: nothing, suppressed base.
            let none = try await service.answer(
                try RatingsQuery.parse(
                    ["from": Self.dayISO, "to": Self.nextDayISO, "segment": "model:zz"], dayparts: dayparts,
                    segments: [.model, .tag]))
            #expect(none.universe.size == 0 && none.series[0].channels.isEmpty)
        }
    }

    @Test func aPeriodReadsNewEventsInBoundedPagesAndBuildsEveryDayTheyTouch() async throws {
        try await withStore { store in
            let docs = Self.events(seed: 4, boxes: 6)
            _ = try await store.collection(Schema.events).insertMany(docs)
            var settings = RatingsSettings()
            settings.scanLimit = 7  // far fewer than the events: many pages
            let now = Self.dayStart + 3 * 86_400_000
            let builder = RatingsBuilder(store: store, node: "n1", settings: settings, logger: Logger(label: "t"), now: { now })
            var known: [String: BoxIndex] = [:]
            #expect(await builder.store.acquireLease(node: "n1", now: Date(), ttl: 60))
            try await builder.buildOnce(known: &known)
            // Every day an event falls in (box time + offset), and the day after it.
            var touched = Set<Int64>()
            for d in docs {
                guard let t = d["t"]?.dateValue?.millis, let o = d["o"]?.intValue else { continue }
                let day = (t + Int64(o)) / 86_400_000
                touched.formUnion([day, day + 1])
            }
            let built = try await builder.store.dayInfos((Self.day - 5)..<(Self.day + 5)).map(\.day)
            #expect(built == touched.sorted() && built.count >= 2)
            let newest = docs.compactMap { $0["r"]?.dateValue?.millis }.max()
            #expect(try await builder.store.watermark() == newest)
            // Nothing new: the watermark stays where it is.
            try await builder.buildOnce(known: &known)
            #expect(try await builder.store.watermark() == newest)
            // With the events of the rescan window remembered, a period with nothing new rebuilds nothing.
            var seen = Set<String>()
            try await builder.buildOnce(known: &known, seen: &seen)
            #expect(!seen.isEmpty)
            let versions = try await builder.store.dayInfos((Self.day - 5)..<(Self.day + 5)).map(\.version)
            try await builder.buildOnce(known: &known, seen: &seen)
            #expect(try await builder.store.dayInfos((Self.day - 5)..<(Self.day + 5)).map(\.version) == versions)
        }
    }

    @Test func aDayBuiltWhileATuneWasOpenIsRebuiltUntilTheCapWithoutNewEvents() async throws {
        try await withStore { store in
            // One box tunes at 20:00 and then says nothing: its credit grows with the build's
            // horizon until the 4 h cap (midnight), and the day is rebuilt without a new event.
            let tuneAt = Self.dayStart + 20 * 3_600_000
            let doc: Document = [
                "_id": "quiet|b|1", "d": "quiet", "b": "b", "s": 1, "t": .date(Date(millis: tuneAt)), "r": .date(Date(millis: tuneAt)),
                "o": 0, "e": "tune", "ch": "ch1",
            ]
            _ = try await store.collection(Schema.events).insertOne(doc)
            let clock = Mutex<Int64>(tuneAt + 30 * 60_000)
            let builder = RatingsBuilder(store: store, node: "n1", logger: Logger(label: "t"), now: { clock.withLock { $0 } })
            let service = RatingsService(store: builder.store, dayparts: try DaypartSchedule.parse(DaypartSchedule.defaultSpec)) { _ in 10 }
            var known: [String: BoxIndex] = [:]
            // As the running builder does: events already counted do not make their day dirty again.
            var seen = Set<String>()
            func credited() async throws -> (Int, Int64?) {
                let info = try await builder.store.dayInfos(Self.day..<(Self.day + 1)).first
                let answer = try await service.answer(
                    try RatingsQuery.parse(
                        ["from": Self.dayISO, "to": Self.nextDayISO, "measures": "amr", "universe": "registered"], dayparts: service.dayparts))
                return (info?.version ?? 0, answer.series.first?.channels.first?.boxMinutes)
            }
            #expect(await builder.store.acquireLease(node: "n1", now: Date(), ttl: 60), "the watermark is kept under the lease")
            try await builder.buildOnce(known: &known, seen: &seen)
            let c130 = try await credited()
            #expect(c130 == (1, 30), "\(c130)")
            // Another box's event, placed three days back (late: not credited, touches no day),
            // moves the watermark on, so the quiet box's event is no longer rescanned.
            let lateAt = tuneAt + 100 * 60_000
            let late: Document = [
                "_id": "late|b|1", "d": "late", "b": "b", "s": 1, "t": .date(Date(millis: lateAt - 3 * 86_400_000)),
                "r": .date(Date(millis: lateAt)), "o": 0, "e": "tune", "ch": "ch2",
            ]
            _ = try await store.collection(Schema.events).insertOne(late)
            clock.withLock { $0 = tuneAt + 120 * 60_000 }
            try await builder.buildOnce(known: &known, seen: &seen)
            let c2120 = try await credited()
            #expect(c2120 == (2, 120), "\(c2120)")
            clock.withLock { $0 = tuneAt + 200 * 60_000 }
            try await builder.buildOnce(known: &known, seen: &seen)
            let c3200 = try await credited()
            #expect(c3200 == (3, 200), "rebuilt with no new event for the day \(c3200)")
            clock.withLock { $0 = Self.dayStart + 86_400_000 + 5 * 3_600_000 }  // past the day's end + the cap
            try await builder.buildOnce(known: &known, seen: &seen)
            let c4240 = try await credited()
            #expect(c4240 == (4, 240), "capped 4 h after the tune \(c4240)")
            clock.withLock { $0 += 3_600_000 }
            try await builder.buildOnce(known: &known, seen: &seen)
            let final = try await credited()
            let infos = try await builder.store.dayInfos((Self.day - 1)..<(Self.day + 3)).map { ($0.day - Self.day, $0.version, $0.builtAt - Self.dayStart) }
            #expect(final == (4, 240), "final: not rebuilt again \(final) \(infos)")
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
