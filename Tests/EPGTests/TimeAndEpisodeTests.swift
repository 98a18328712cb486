import Testing

@testable import EPG

@Suite("XMLTV times and episode numbers")
struct TimeAndEpisodeTests {
    @Test(
        arguments: [
            ("20000101000000 +0000", 946_684_800_000),
            ("20000101000000", 946_684_800_000),  // no offset: UTC
            ("200001010000", 946_684_800_000),  // no seconds
            ("2000010100", 946_684_800_000),
            ("20000101", 946_684_800_000),  // date only
            ("20000101010000 +0100", 946_684_800_000),
            ("20000101010000+0100", 946_684_800_000),  // no space before the offset
            ("19991231190000 -0500", 946_684_800_000),
            ("20000101053000 +0530", 946_684_800_000),
            ("19991231235959", 946_684_799_000),
            ("  20000101000000   +0000  ", 946_684_800_000),
            ("20240229120000 +0000", 1_709_208_000_000),  // leap day
        ] as [(String, Int64)])
    func acceptedTimes(text: String, millis: Int64) {
        #expect(XMLTVTime.parse(text) == millis)
    }

    @Test(arguments: [
        "", "2000", "200001010", "2000010100000", "20001301000000", "20000132000000", "20230229000000",
        "20000101240000", "20000101006000", "20000101000060", "20000101000000 BST", "20000101000000 +01",
        "20000101000000 +1500", "20000101000000 +0160", "20000101000000 +0100 x", "2000-01-01", "x20000101",
    ])
    func rejectedTimes(text: String) {
        #expect(XMLTVTime.parse(text) == nil)
    }

    @Test func iso8601ForMessages() {
        #expect(XMLTVTime.iso8601(946_684_799_000) == "1999-12-31T23:59:59Z")
        #expect(XMLTVTime.iso8601(0) == "1970-01-01T00:00:00Z")
        #expect(XMLTVTime.iso8601(-1) == "1969-12-31T23:59:59Z")
    }

    @Test func xmltvNSIsZeroBased() {
        #expect(EpisodeNumbers.xmltvNS("1.4.0/1") == EpisodeInfo(season: 2, episode: 5, part: 1, partCount: 1))
        #expect(EpisodeNumbers.xmltvNS(" 0 . 0 . ") == EpisodeInfo(season: 1, episode: 1))
        #expect(EpisodeNumbers.xmltvNS(".4.") == EpisodeInfo(episode: 5))
        let totals = EpisodeInfo(season: 3, seasonCount: 3, episode: 10, episodeCount: 10)
        #expect(EpisodeNumbers.xmltvNS("2/3.9/10.") == totals)
        for bad in ["", "..", "1.2", "1.2.3.4", "a.b.c", "-1.0.0", "1/0.0.0", "1/2/3.0.0"] {
            #expect(EpisodeNumbers.xmltvNS(bad) == nil, "\(bad)")
        }
    }

    @Test func onscreenForms() {
        #expect(EpisodeNumbers.onscreen("S02E05") == EpisodeInfo(season: 2, episode: 5))
        #expect(EpisodeNumbers.onscreen("s2 e5") == EpisodeInfo(season: 2, episode: 5))
        #expect(EpisodeNumbers.onscreen("3x12") == EpisodeInfo(season: 3, episode: 12))
        #expect(EpisodeNumbers.onscreen("E07") == EpisodeInfo(episode: 7))
        #expect(EpisodeNumbers.onscreen("S04") == EpisodeInfo(season: 4))
        #expect(EpisodeNumbers.onscreen("S01E02-E03") == EpisodeInfo(season: 1, episode: 2))
        for bad in ["", "Episode 5", "12", "SxE", "S", "x5"] {
            #expect(EpisodeNumbers.onscreen(bad) == nil, "\(bad)")
        }
    }

    @Test func xmltvNSWinsAndOnscreenFillsGaps() {
        let (both, none) = EpisodeNumbers.decode([
            EpisodeNumber(system: "onscreen", raw: "S09E09"), EpisodeNumber(system: "xmltv_ns", raw: "1.4."),
        ])
        #expect(both == EpisodeInfo(season: 2, episode: 5) && none.isEmpty)
        let (partial, _) = EpisodeNumbers.decode([
            EpisodeNumber(system: "xmltv_ns", raw: ".4."), EpisodeNumber(system: "onscreen", raw: "S03E09"),
        ])
        #expect(partial == EpisodeInfo(season: 3, episode: 5))
        let (other, undecoded) = EpisodeNumbers.decode([
            EpisodeNumber(system: "dd_progid", raw: "EP0123"), EpisodeNumber(system: "onscreen", raw: "Folge 3"),
        ])
        #expect(other.isEmpty && undecoded == [EpisodeNumber(system: "onscreen", raw: "Folge 3")])
    }
}
