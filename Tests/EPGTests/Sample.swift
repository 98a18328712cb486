import Foundation

/// The sample feed: every case the parser must handle. Line numbers matter (tests assert them):
/// line 1 is the XML declaration.
let sampleXMLTV = """
    <?xml version="1.0" encoding="UTF-8"?>
    <!DOCTYPE tv SYSTEM "xmltv.dtd">
    <tv generator-info-name="argus-test">
      <channel id="one.de">
        <display-name lang="de">Das Erste</display-name>
        <display-name lang="en">ARD One</display-name>
      </channel>
      <channel id="news.us">
        <display-name>News US</display-name>
      </channel>
      <programme start="20261203190000 +0100" stop="20261203201500 +0100" channel="one.de">
        <title lang="de">Tagesschau</title>
        <title lang="en-GB">Daily News</title>
        <category lang="en">News</category>
      </programme>
      <programme start="20261203201500 +0100" stop="20261203234500 +0100" channel="one.de">
        <title lang="de">Tatort: Schöne Grüße</title>
        <sub-title lang="de">Folge 5</sub-title>
        <desc lang="de">Ein Krimi &amp; mehr.</desc>
        <episode-num system="xmltv_ns">1.4.0/1</episode-num>
        <episode-num system="onscreen">S02E05</episode-num>
      </programme>
      <programme start="20261203233000 +0100" stop="20261204013000 +0100" channel="one.de">
        <title lang="de">Nachtfilm</title>
      </programme>
      <programme start="20261204013000 +0100" channel="one.de">
        <title><![CDATA[Nachtprogramm]]></title>
      </programme>
      <programme start="20261204050000 +0100" channel="one.de">
        <title>Morgenmagazin</title>
      </programme>
      <programme start="20261203180000 -0500" stop="20261203190000 -0500" channel="news.us">
        <title lang="en">Evening News</title>
        <episode-num system="onscreen">S3 E12</episode-num>
      </programme>
      <programme start="202612031900 -0500" stop="20261204010000" channel="news.us">
        <title lang="en">Late Show</title>
        <credits><actor>Not A Title</actor></credits>
      </programme>
    </tv>
    """

/// Expected instants (ms since the epoch, UTC), computed independently.
enum At {
    static let dec3_1900_p1: Int64 = 1_796_320_800_000  // 2026-12-03 19:00 +0100 = 18:00Z
    static let dec3_2015_p1: Int64 = 1_796_325_300_000
    static let dec3_2330_p1: Int64 = 1_796_337_000_000
    static let dec3_2345_p1: Int64 = 1_796_337_900_000
    static let dec4_0130_p1: Int64 = 1_796_344_200_000
    static let dec4_0500_p1: Int64 = 1_796_356_800_000
    static let dec3_1800_m5: Int64 = 1_796_338_800_000  // 2026-12-03 18:00 -0500 = 23:00Z
    static let dec3_1900_m5: Int64 = 1_796_342_400_000  // = 2026-12-04 00:00Z
    static let dec4_0100_utc: Int64 = 1_796_346_000_000
}

/// A minimal `<tv>` document around some body lines; the body starts on line 3.
func feed(_ body: String) -> String {
    "<?xml version=\"1.0\"?>\n<tv>\n" + body + "\n</tv>\n"
}

/// A programme element on one line.
func programme(_ channel: String, _ start: String, _ stop: String?, _ title: String) -> String {
    let stopAttribute = stop.map { " stop=\"\($0)\"" } ?? ""
    return "<programme channel=\"\(channel)\" start=\"\(start)\"\(stopAttribute)><title>\(title)</title></programme>"
}
