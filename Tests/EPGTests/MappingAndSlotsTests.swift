import Testing

@testable import EPG

private let minute: Int64 = 60_000

private func show(_ channel: String, _ start: Int64, _ stop: Int64, _ title: String, line: Int = 0) -> Programme {
    Programme(channel: channel, start: start, stop: stop, title: title, line: line)
}

@Suite("Channel mapping")
struct ChannelMappingTests {
    @Test func identityByDefault() throws {
        let doc = try XMLTVParser().parse(Array(sampleXMLTV.utf8))
        let mapped = ChannelMapping().apply(to: doc)
        #expect(mapped.unmapped.isEmpty)
        #expect(mapped.programmesByHubChannel["one.de"]?.count == 4)
        #expect(mapped.programmesByHubChannel["news.us"]?.count == 2)
    }

    @Test func explicitMapKnownChannelsAndUnmappedList() throws {
        let doc = try XMLTVParser().parse(Array(sampleXMLTV.utf8))
        let strict = ChannelMapping(["one.de": "ard"], identity: false)
        #expect(strict.hubChannel(for: "one.de") == "ard")
        #expect(strict.hubChannel(for: "news.us") == nil)
        let mapped = strict.apply(to: doc)
        #expect(mapped.programmesByHubChannel.keys.sorted() == ["ard"])
        #expect(mapped.unmapped == ["news.us"])

        let known = ChannelMapping(["one.de": "ard"], hubChannels: ["ard", "cnn"]).apply(to: doc)
        #expect(known.unmapped == ["news.us"])  // identity gives "news.us", which the hub does not carry
    }

    @Test func severalIdsOnOneHubChannelAreListed() {
        let doc = EPGDocument(
            channels: [],
            programmes: [show("a", 10 * minute, 20 * minute, "A"), show("b", 0, 10 * minute, "B")],
            warnings: [])
        let mapped = ChannelMapping(["a": "x", "b": "x"]).apply(to: doc)
        #expect(mapped.sharedTargets == ["x": ["a", "b"]])
        #expect(mapped.programmesByHubChannel["x"]?.map(\.title) == ["B", "A"])
    }
}

@Suite("Programme slots")
struct ProgrammeSlotsTests {
    @Test func aSlotCoversTheMinutesWhoseStartIsInside() {
        #expect(ProgrammeSlots.minutes(of: show("c", 60 * minute, 90 * minute, "")) == 60..<90)
        #expect(ProgrammeSlots.minutes(of: show("c", 60 * minute + 30_000, 90 * minute + 10_000, "")) == 61..<91)
        #expect(ProgrammeSlots.minutes(of: show("c", 60 * minute + 10_000, 60 * minute + 50_000, "")).isEmpty)
        #expect(ProgrammeSlots.minutes(of: show("c", -2 * minute - 1, -minute, "")) == -2..<(-1))
    }

    @Test func whatWasOnAtMinuteM() {
        let slots = ProgrammeSlots([
            show("c", 30 * minute, 60 * minute, "B"), show("c", 0, 30 * minute, "A"),
            show("c", 90 * minute, 120 * minute, "C"),
        ])
        #expect(slots.programmes.map(\.title) == ["A", "B", "C"])
        #expect(slots.programme(atMinute: 0)?.title == "A")
        #expect(slots.programme(atMinute: 29)?.title == "A")
        #expect(slots.programme(atMinute: 30)?.title == "B")
        #expect(slots.programme(atMinute: 60) == nil)  // a gap
        #expect(slots.programme(atMinute: 119)?.title == "C")
        #expect(slots.programme(atMinute: 120) == nil)
        #expect(slots.programme(atMinute: -1) == nil)
        #expect(slots.programmes(from: 50 * minute, to: 100 * minute).map(\.title) == ["B", "C"])
    }

    @Test func everyMinuteOfTheSampleBelongsToOneProgramme() throws {
        let doc = try XMLTVParser().parse(Array(sampleXMLTV.utf8))
        let slots = try #require(ProgrammeSlots.byChannel(doc.programmes)["one.de"])
        for p in slots.programmes {
            for m in ProgrammeSlots.minutes(of: p) { #expect(slots.programme(atMinute: m) == p) }
        }
        // Nachtfilm crosses midnight: 23:30–01:30 local is 120 minutes.
        let film = try #require(slots.programme(at: At.dec4_0130_p1 - 1))
        #expect(film.title == "Nachtfilm" && ProgrammeSlots.minutes(of: film).count == 120)
    }

    @Test func overlappingInputIsCutLikeTheParserDoes() {
        let slots = ProgrammeSlots([
            show("c", 0, 60 * minute, "Long", line: 1), show("c", 30 * minute, 40 * minute, "Short", line: 2),
            show("c", 30 * minute, 45 * minute, "Fix", line: 3), show("c", 50 * minute, 50 * minute, "Empty"),
        ])
        #expect(slots.programmes.map(\.title) == ["Long", "Fix"])
        #expect(slots.programmes[0].stop == 30 * minute && slots.programmes[0].truncated)
    }

    @Test func searchByTitleIgnoresCaseAndDiacritics() throws {
        let doc = try XMLTVParser().parse(Array(sampleXMLTV.utf8))
        let slots = try #require(ProgrammeSlots.byChannel(doc.programmes)["one.de"])
        #expect(slots.search(title: "tatort: SCHONE").map(\.title) == ["Tatort: Schöne Grüße"])
        #expect(slots.search(title: "daily news").map(\.title) == ["Tagesschau"])  // any language's title
        #expect(slots.search(title: "nacht").map(\.title) == ["Nachtfilm", "Nachtprogramm"])
        #expect(slots.search(title: "  ").isEmpty && slots.search(title: "zzz").isEmpty)
    }
}
