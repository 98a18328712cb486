import Foundation
import Testing

@testable import EPG

private func sample(_ languages: [String] = []) throws -> EPGDocument {
    try XMLTVParser(languagePreference: languages).parse(Array(sampleXMLTV.utf8))
}

private func find(_ doc: EPGDocument, _ title: String) throws -> Programme {
    try #require(doc.programmes.first { $0.titles.contains { $0.text == title } })
}

@Suite("XMLTV parser: the sample feed")
struct SampleFeedTests {
    @Test func channelsAndDisplayNames() throws {
        let doc = try sample()
        #expect(doc.channels.map(\.id) == ["one.de", "news.us"])
        let names = [LocalizedText("Das Erste", lang: "de"), LocalizedText("ARD One", lang: "en")]
        #expect(doc.channels[0].displayNames == names)
        #expect(doc.channels[0].line == 4)
        #expect(doc.channels[1].displayNames == [LocalizedText("News US")])
    }

    @Test func programmesAreSortedPerChannelAndKeepTheirLines() throws {
        let doc = try sample()
        #expect(
            doc.programmes.map(\.title) == [
                "Evening News", "Late Show", "Tagesschau", "Tatort: Schöne Grüße", "Nachtfilm", "Nachtprogramm",
            ])
        #expect(doc.programmes.map(\.line) == [32, 36, 11, 16, 23, 26])
    }

    @Test func plusOffsetIsConvertedToUTC() throws {
        let p = try find(try sample(), "Tagesschau")
        #expect(p.start == At.dec3_1900_p1)
        #expect(p.stop == At.dec3_2015_p1)
        #expect(p.stopSource == .explicit && !p.truncated)
        #expect(XMLTVTime.iso8601(p.start) == "2026-12-03T18:00:00Z")
    }

    @Test func minusOffsetAndMissingSecondsAndMissingOffset() throws {
        let doc = try sample()
        let evening = try find(doc, "Evening News")
        #expect(evening.start == At.dec3_1800_m5 && evening.stop == At.dec3_1900_m5)
        let late = try find(doc, "Late Show")  // start has no seconds; stop has no offset (UTC)
        #expect(late.start == At.dec3_1900_m5 && late.stop == At.dec4_0100_utc)
    }

    @Test func aProgrammeCrossingMidnightKeepsItsLength() throws {
        let p = try find(try sample(), "Nachtfilm")
        #expect(p.start == At.dec3_2330_p1 && p.stop == At.dec4_0130_p1)
        #expect(p.stop - p.start == 2 * 3_600_000)
    }

    @Test func missingStopEndsAtTheNextStart() throws {
        let p = try find(try sample(), "Nachtprogramm")  // title given as CDATA
        #expect(p.start == At.dec4_0130_p1)
        #expect(p.stop == At.dec4_0500_p1)
        #expect(p.stopSource == .nextStart)
    }

    @Test func theLastProgrammeWithoutStopIsDroppedWithAWarning() throws {
        let doc = try sample()
        #expect(!doc.programmes.contains { $0.title == "Morgenmagazin" })
        let w = try #require(doc.warnings.first { $0.kind == .lastProgrammeWithoutStop })
        #expect(w.line == 29 && w.channel == "one.de")
        #expect(w.message.contains("Morgenmagazin"))
    }

    @Test func anOverlapIsReportedAndTheEarlierProgrammeIsCut() throws {
        let doc = try sample()
        #expect(doc.warnings.map(\.kind) == [.overlap, .lastProgrammeWithoutStop])
        let w = doc.warnings[0]
        #expect(w.line == 16 && w.otherLine == 23 && w.channel == "one.de")
        #expect(w.message.contains("Tatort") && w.message.contains("Nachtfilm"))
        let cut = try find(doc, "Tatort: Schöne Grüße")
        #expect(cut.start == At.dec3_2015_p1 && cut.stop == At.dec3_2330_p1 && cut.truncated)
    }

    @Test func titlesInSeveralLanguages() throws {
        #expect(try find(try sample(), "Tagesschau").titles.count == 2)
        #expect(try find(try sample(), "Tagesschau").title == "Tagesschau")  // no preference: the first
        #expect(try find(try sample(["en"]), "Tagesschau").title == "Daily News")  // "en" matches "en-GB"
        #expect(try find(try sample(["fr", "EN-gb"]), "Tagesschau").title == "Daily News")
        #expect(try find(try sample(["fr"]), "Tagesschau").title == "Tagesschau")
    }

    @Test func episodeNumbersBothSystemsAndOtherElements() throws {
        let doc = try sample()
        let tatort = try find(doc, "Tatort: Schöne Grüße")
        #expect(tatort.episode == EpisodeInfo(season: 2, episode: 5, part: 1, partCount: 1))
        #expect(
            tatort.episodeNumbers == [
                EpisodeNumber(system: "xmltv_ns", raw: "1.4.0/1"), EpisodeNumber(system: "onscreen", raw: "S02E05"),
            ])
        #expect(tatort.subTitles == [LocalizedText("Folge 5", lang: "de")])
        #expect(tatort.descriptions == [LocalizedText("Ein Krimi & mehr.", lang: "de")])
        #expect(try find(doc, "Evening News").episode == EpisodeInfo(season: 3, episode: 12))
        #expect(try find(doc, "Tagesschau").categories == [LocalizedText("News", lang: "en")])
        #expect(try find(doc, "Late Show").titles == [LocalizedText("Late Show", lang: "en")])  // not the actor
    }

    @Test func bytesAndDataGiveTheSameDocument() throws {
        let fromData = try XMLTVParser().parse(Data(sampleXMLTV.utf8))
        #expect(fromData == (try sample()))
    }

    /// XMLParser given `Data` whole passes libxml2 one chunk, refused over 10 MB; the parser streams it.
    @Test func aFeedOver10MBParses() throws {
        let padding = "<icon src=\"" + String(repeating: "a", count: 200) + "\"/>\n"
        let body = String(repeating: padding, count: 11 * 1024 * 1024 / padding.utf8.count + 1)
        let xml = feed(body + programme("c", "20260101100000", "20260101110000", "Last"))
        #expect(xml.utf8.count > 11 * 1024 * 1024)
        let doc = try XMLTVParser().parse(Array(xml.utf8))
        #expect(doc.programmes.map(\.title) == ["Last"])
    }

    @Test func parsesConcurrently() async throws {
        let expected = try sample()
        let results = try await withThrowingTaskGroup(of: EPGDocument.self) { group in
            for _ in 0..<4 { group.addTask { try XMLTVParser().parse(Array(sampleXMLTV.utf8)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 4 && results.allSatisfy { $0 == expected })
    }
}

@Suite("XMLTV parser: repairs and warnings")
struct RepairTests {
    @Test func sameStartTwiceKeepsTheLaterInTheFile() throws {
        let doc = try XMLTVParser().parse(
            Array(
                feed(
                    """
                    <channel id="c"/>
                    \(programme("c", "20260101100000", "20260101110000", "First"))
                    \(programme("c", "20260101100000", "20260101103000", "Correction"))
                    """
                ).utf8))
        #expect(doc.programmes.map(\.title) == ["Correction"])
        #expect(doc.warnings.map(\.kind) == [.overlap])
        #expect(doc.warnings[0].line == 4 && doc.warnings[0].otherLine == 5)
        #expect(doc.warnings[0].message.contains("dropped"))
    }

    @Test func stopNotAfterStartUndeclaredChannelMissingTitleAndDuplicateChannel() throws {
        let doc = try XMLTVParser().parse(
            Array(
                feed(
                    """
                    <channel id="c"/>
                    <channel id="c"><display-name>Again</display-name></channel>
                    \(programme("c", "20260101100000", "20260101100000", "Empty"))
                    \(programme("ghost", "20260101100000", "20260101110000", "Boo"))
                    <programme channel="c" start="20260101120000" stop="20260101130000"/>
                    <programme channel="c" start="20260101130000" stop="20260101140000">
                    <episode-num system="xmltv_ns">one.two</episode-num></programme>
                    """
                ).utf8))
        #expect(doc.channels.count == 1 && doc.channels[0].displayNames.isEmpty)
        #expect(
            doc.warnings.map(\.kind) == [
                .duplicateChannel, .stopNotAfterStart, .undeclaredChannel, .missingTitle, .missingTitle,
                .undecodedEpisodeNumber,
            ])
        #expect(doc.warnings.map(\.line) == [4, 5, 6, 7, 8, 8])
        #expect(doc.programmes.map(\.channel) == ["c", "c", "ghost"])
        #expect(doc.programmes[0].title == "")
    }
}
