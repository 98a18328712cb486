import Testing

@testable import EPG

private func failure(_ xml: String, limits: EPGLimits = EPGLimits()) -> EPGError? {
    do {
        _ = try XMLTVParser(limits: limits).parse(Array(xml.utf8))
        return nil
    } catch {
        return error
    }
}

@Suite("XMLTV parser: malformed input is rejected whole, with its line")
struct ErrorTests {
    @Test func notWellFormed() throws {
        let e = try #require(failure(feed("<channel id=\"c\">\n<display-name>x</display-name>\n</chanel>")))
        #expect(e.kind == .notWellFormed && e.line == 5)
        #expect(e.description.hasPrefix("line 5: not well-formed XML inside <channel>: end tag does not match"))
    }

    @Test func unclosedDocument() throws {
        let e = try #require(failure("<?xml version=\"1.0\"?>\n<tv>\n<channel id=\"c\">\n"))
        #expect(e.kind == .notWellFormed)
        #expect(e.line == 4 || e.line == 3)  // libxml2 reports the end of input
        #expect(e.message.contains("inside <channel>") && e.message.contains("unexpected end of document"))
    }

    @Test func emptyInput() throws {
        #expect(failure("")?.kind == .notWellFormed)
        #expect(failure("   \n")?.kind == .notWellFormed)
    }

    @Test func unknownRoot() throws {
        let e = try #require(failure("<?xml version=\"1.0\"?>\n\n<schedule>\n</schedule>\n"))
        #expect(e.kind == .unknownRoot && e.line == 3)
        #expect(e.message.contains("<schedule>"))
    }

    @Test(arguments: [
        (#"<programme start="20260101100000"><title>x</title></programme>"#, "channel"),
        (#"<programme channel="c" stop="20260101100000"><title>x</title></programme>"#, "start"),
        (#"<programme channel="c" start="  "><title>x</title></programme>"#, "start"),
        (#"<channel><display-name>x</display-name></channel>"#, "id"),
    ])
    func missingAttribute(element: String, attribute: String) throws {
        let e = try #require(failure(feed(programme("c", "20260101090000", "20260101100000", "ok") + "\n" + element)))
        #expect(e.kind == .missingAttribute && e.line == 4)
        #expect(e.message.contains(attribute))
    }

    @Test(arguments: [
        (#"start="2026-01-01 10:00""#, "start"), (#"start="20260101100000 BST""#, "start"),
        (#"start="20260231100000 +0100""#, "start"), (#"start="20260101100000" stop="202601011""#, "stop"),
    ])
    func badTime(attributes: String, which: String) throws {
        let xml = feed("<channel id=\"c\"/>\n\n<programme channel=\"c\" \(attributes)><title>x</title></programme>")
        let e = try #require(failure(xml))
        #expect(e.kind == .badTime && e.line == 5)
        #expect(e.message.contains("bad \(which) time"))
    }

    @Test func aLaterErrorReturnsNothingPartial() throws {
        var body = (0..<50).map { programme("c", "2026010\($0 % 9 + 1)100000", nil, "P\($0)") }
        body.append("<programme channel=\"c\" start=\"nonsense\"/>")
        let e = try #require(failure(feed(body.joined(separator: "\n"))))
        #expect(e.kind == .badTime && e.line == 53)
    }

    @Test func documentTooLarge() throws {
        let xml = feed(programme("c", "20260101100000", nil, "x"))
        let e = try #require(failure(xml, limits: EPGLimits(maxBytes: 40)))
        #expect(e.kind == .documentTooLarge && e.line == nil)
        #expect(e.message.contains("limit of 40"))
        #expect(failure(xml, limits: EPGLimits(maxBytes: xml.utf8.count)) == nil)
    }

    @Test func tooManyProgrammes() throws {
        let body = (0..<4).map { programme("c", "2026010\($0 + 1)100000", "2026010\($0 + 1)110000", "P") }
        let xml = feed(body.joined(separator: "\n"))
        let e = try #require(failure(xml, limits: EPGLimits(maxProgrammes: 3)))
        #expect(e.kind == .tooManyProgrammes && e.line == 6)
        #expect(failure(xml, limits: EPGLimits(maxProgrammes: 4)) == nil)
    }
}
