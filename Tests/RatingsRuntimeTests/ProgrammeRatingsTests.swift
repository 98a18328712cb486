import ArgusStore
import ArgusTestSupport
import EPG
import Foundation
import Logging
import MongoStore
import Ratings
import Testing

@testable import RatingsRuntime

/// EPG import and programme ratings against the real store (MONGODB_URI).
@Suite("Programme ratings")
struct ProgrammeRatingsTests {
    func withStore(_ body: (MongoStore) async throws -> Void) async throws {
        try await withTestStore("epg", body)
    }

    static func xmltv(day: Int64, _ programmes: [(String, Int, Int, String)]) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMddHHmmss"
        func t(_ minute: Int) -> String { f.string(from: Date(timeIntervalSince1970: Double(day * 86_400 + Int64(minute) * 60))) + " +0000" }
        let body = programmes.map { ch, start, stop, title in
            #"<programme channel="\#(ch)" start="\#(t(start))" stop="\#(t(stop))"><title lang="en">\#(title)</title></programme>"#
        }
        return #"<?xml version="1.0" encoding="UTF-8"?><tv><channel id="ch1"/><channel id="ch2"/><channel id="xx9"/>"# + body.joined() + "</tv>"
    }

    @Test func programmeRatingsAreTheSlotsOfTheStoredCredit() async throws {
        try await withStore { store in
            let day = RatingsBuildTests.day
            let dayStart = day * 86_400_000
            let docs = RatingsBuildTests.events(seed: 21, boxes: 30)
            _ = try await store.collection(Schema.events).insertMany(docs)
            let builder = RatingsBuilder(store: store, node: "n1", logger: Logger(label: "t"), now: { dayStart + 3 * 86_400_000 })
            var known: [String: BoxIndex] = [:]
            try await builder.build(day: day, known: &known)
            let epg = EPGStore(store: store)
            // A first version, then the real one: the first is gone.
            _ = try await epg.replace(
                source: "main", try XMLTVParser().parse(Array(Self.xmltv(day: day, [("ch1", 60, 120, "Old")]).utf8)), mapping: ChannelMapping(),
                now: Date())
            let feed = Self.xmltv(
                day: day, [("ch1", 720, 780, "Noon News"), ("ch2", 1215, 1325, "Late Film"), ("ch1", 780, 845, "Afternoon Show")])
            let r = try await epg.replace(
                source: "main", try XMLTVParser().parse(Array(feed.utf8)), mapping: ChannelMapping(hubChannels: ["ch1", "ch2"]), now: Date())
            #expect(r.version == 2 && r.programmes == 3 && r.unmapped == ["xx9"] && r.channels == ["ch1", "ch2"])

            let service = RatingsService(store: builder.store, dayparts: try DaypartSchedule.parse(DaypartSchedule.defaultSpec)) { _ in 30 }
            let answer = try await service.programmeRatings(
                from: day * 1440, to: (day + 1) * 1440, channels: nil, title: nil, top: nil, universe: .registered, epg: epg)
            #expect(answer.programmes.map(\.title) == ["Noon News", "Afternoon Show", "Late Film"])

            // The same slots summed straight from each box's credit.
            var byBox: [String: [StoredViewing]] = [:]
            for d in docs { if let v = StoredViewing(d) { byBox[v.device, default: []].append(v) } }
            var credits: [MinuteCredit] = []
            var creditsByBox: [[MinuteCredit]] = []
            for (_, list) in byBox {
                let c = MinuteCrediting.credits(connections: StoredViewing.connections(list), horizon: dayStart + 2 * 86_400_000).credits
                credits += c
                creditsByBox.append(c)
            }
            for row in answer.programmes {
                let (ch, start, stop): (String, Int64, Int64) =
                    switch row.title {
                    case "Noon News": ("ch1", 720, 780)
                    case "Afternoon Show": ("ch1", 780, 845)
                    default: ("ch2", 1215, 1325)
                    }
                let slot = (day * 1440 + start)..<(day * 1440 + stop)
                let mine = Int64(credits.filter { $0.channel == ch && slot.contains($0.minute) }.count)
                let all = Int64(credits.filter { slot.contains($0.minute) }.count)
                #expect(row.minutes == slot.count && row.boxMinutes == mine, "\(row.title)")
                #expect(row.amr == Double(mine) / Double(slot.count))
                #expect(row.sharePct == (all > 0 ? Double(mine) / Double(all) * 100 : nil))
                if row.title == "Noon News" {
                    let reach = creditsByBox.filter { $0.contains { $0.channel == ch && slot.contains($0.minute) } }.count
                    #expect(row.reach == reach, "an hour-aligned slot has reach")
                } else {
                    #expect(row.reach == nil, "reach needs whole hours")
                }
            }
            #expect(answer.programmes.contains { ($0.boxMinutes ?? 0) > 0 }, "the scenario has viewers in some slot")
            // Title search and top-N.
            let found = try await service.programmeRatings(
                from: day * 1440, to: (day + 1) * 1440, channels: nil, title: "film", top: nil, universe: .registered, epg: epg)
            #expect(found.programmes.map(\.title) == ["Late Film"])
            let top = try await service.programmeRatings(
                from: day * 1440, to: (day + 1) * 1440, channels: nil, title: nil, top: 1, universe: .registered, epg: epg)
            #expect(top.programmes.count == 1 && top.programmes[0].amr == answer.programmes.compactMap(\.amr).max())
        }
    }
}
