import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// Parses XMLTV (see docs/epg.md for the accepted subset and the rules).
///
/// Pure: no I/O, no global state. A feed is returned whole or not at all: any error throws `EPGError`.
public struct XMLTVParser: Sendable {
    /// Preferred title languages, best first (`["de", "en"]`). A preference matches a `lang` equal to it or
    /// starting with it and `-` (`en` matches `en-GB`), case-insensitively. No match: the first title.
    public var languagePreference: [String]
    /// Size caps.
    public var limits: EPGLimits

    /// Creates a parser.
    public init(languagePreference: [String] = [], limits: EPGLimits = EPGLimits()) {
        self.languagePreference = languagePreference
        self.limits = limits
    }

    /// Parses an XMLTV document.
    public func parse(_ bytes: [UInt8]) throws(EPGError) -> EPGDocument {
        guard bytes.count <= limits.maxBytes else { throw tooLarge(bytes.count) }
        return try parse(Data(bytes))
    }

    /// Parses an XMLTV document.
    public func parse(_ data: Data) throws(EPGError) -> EPGDocument {
        guard data.count <= limits.maxBytes else { throw tooLarge(data.count) }
        let collector = Collector(maxProgrammes: limits.maxProgrammes)
        // Fed as a stream: XMLParser then hands libxml2 small chunks. Given `Data` whole, it passes one chunk,
        // and libxml2 refuses a chunk over 10 MB without XML_PARSE_HUGE (seen as a bogus "out of memory" error).
        let parser = XMLParser(stream: InputStream(data: data))
        parser.shouldProcessNamespaces = false
        parser.shouldResolveExternalEntities = false
        parser.delegate = collector
        let ok = parser.parse()
        if let error = collector.error { throw error }
        if !ok || !collector.rootSeen {
            let line = max(parser.lineNumber, 1)
            throw EPGError(.notWellFormed, line: line, "not well-formed XML: no <tv> root element")
        }
        return Resolver(languagePreference: languagePreference).resolve(collector)
    }

    private func tooLarge(_ count: Int) -> EPGError {
        EPGError(.documentTooLarge, line: nil, "document is \(count) bytes, more than the limit of \(limits.maxBytes)")
    }
}

/// A `<programme>` as read, before stops are resolved.
struct RawProgramme {
    var channel: String
    var start: Int64
    var stop: Int64?
    var line: Int
    var titles: [LocalizedText] = []
    var subTitles: [LocalizedText] = []
    var descriptions: [LocalizedText] = []
    var categories: [LocalizedText] = []
    var episodeNumbers: [EpisodeNumber] = []
}

/// The XMLParser delegate: collects channels and raw programmes; stops at the first error.
final class Collector: NSObject, XMLParserDelegate {
    let maxProgrammes: Int
    var error: EPGError?
    var rootSeen = false
    var channels: [EPGChannel] = []
    var channelIDs: Set<String> = []
    var programmes: [RawProgramme] = []
    var warnings: [EPGWarning] = []

    private var stack: [String] = []
    private var channel: EPGChannel?
    private var programme: RawProgramme?
    private var text = ""
    private var capturing = false
    private var captureLang: String?
    private var captureSystem = ""

    init(maxProgrammes: Int) {
        self.maxProgrammes = maxProgrammes
    }

    private func fail(_ parser: XMLParser, _ kind: EPGError.Kind, _ message: String) {
        if error == nil { error = EPGError(kind, line: parser.lineNumber, message) }
        parser.abortParsing()
    }

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        guard error == nil else { return }
        let parent = stack.last
        stack.append(name)
        switch (parent, name) {
        case (nil, _):
            guard name == "tv" else { return fail(parser, .unknownRoot, "root element is <\(name)>, expected <tv>") }
            rootSeen = true
        case ("tv", "channel"):
            guard let id = nonEmpty(attributes["id"]) else {
                return fail(parser, .missingAttribute, "<channel> without an id attribute")
            }
            channel = EPGChannel(id: id, displayNames: [], line: parser.lineNumber)
        case ("tv", "programme"):
            startProgramme(parser, attributes)
        case ("channel", "display-name") where channel != nil,
            ("programme", "title") where programme != nil,
            ("programme", "sub-title") where programme != nil,
            ("programme", "desc") where programme != nil,
            ("programme", "category") where programme != nil,
            ("programme", "episode-num") where programme != nil:
            capturing = true
            text = ""
            captureLang = nonEmpty(attributes["lang"])
            captureSystem = nonEmpty(attributes["system"]) ?? "onscreen"
        default:
            break  // <icon>, <credits>, <rating>, ... and anything unknown: ignored.
        }
    }

    private func startProgramme(_ parser: XMLParser, _ attributes: [String: String]) {
        guard programmes.count < maxProgrammes else {
            return fail(parser, .tooManyProgrammes, "more than \(maxProgrammes) programmes")
        }
        guard let channelID = nonEmpty(attributes["channel"]) else {
            return fail(parser, .missingAttribute, "<programme> without a channel attribute")
        }
        guard let startText = nonEmpty(attributes["start"]) else {
            return fail(parser, .missingAttribute, "<programme> without a start attribute")
        }
        guard let start = XMLTVTime.parse(startText) else {
            return fail(parser, .badTime, "bad start time \"\(startText)\" (expected YYYYMMDDhhmmss ±HHMM)")
        }
        var stop: Int64?
        if let stopText = nonEmpty(attributes["stop"]) {
            guard let parsed = XMLTVTime.parse(stopText) else {
                return fail(parser, .badTime, "bad stop time \"\(stopText)\" (expected YYYYMMDDhhmmss ±HHMM)")
            }
            stop = parsed
        }
        programme = RawProgramme(channel: channelID, start: start, stop: stop, line: parser.lineNumber)
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if capturing { text += string }
    }

    func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
        if capturing { text += String(decoding: CDATABlock, as: UTF8.self) }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        guard error == nil else { return }
        stack.removeLast()
        let parent = stack.last
        if capturing, parent == "channel" || parent == "programme" {
            capturing = false
            endCapture(name, parser)
            return
        }
        switch (parent, name) {
        case ("tv", "channel"):
            guard let done = channel else { return }
            channel = nil
            if channelIDs.insert(done.id).inserted {
                channels.append(done)
            } else {
                warnings.append(
                    EPGWarning(
                        kind: .duplicateChannel, channel: done.id, line: done.line,
                        message: "channel \"\(done.id)\" declared again; the first declaration is kept"))
            }
        case ("tv", "programme"):
            guard let done = programme else { return }
            programme = nil
            programmes.append(done)
        default:
            break
        }
    }

    private func endCapture(_ name: String, _ parser: XMLParser) {
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let item = LocalizedText(value, lang: captureLang)
        switch name {
        case "display-name": channel?.displayNames.append(item)
        case "title": programme?.titles.append(item)
        case "sub-title": programme?.subTitles.append(item)
        case "desc": programme?.descriptions.append(item)
        case "category": programme?.categories.append(item)
        case "episode-num": programme?.episodeNumbers.append(EpisodeNumber(system: captureSystem, raw: value))
        default: break
        }
    }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) {
        guard error == nil else { return }
        // libxml2's error numbers do not map reliably onto XMLParser.ErrorCode's names: show the number only.
        let code = (parseError as NSError).code
        var where_ = ""
        if let open = stack.last { where_ = " inside <\(open)>" }
        let what = Collector.libxml2Reasons[code].map { ": \($0)" } ?? ""
        error = EPGError(
            .notWellFormed, line: parser.lineNumber, "not well-formed XML\(where_)\(what) (libxml2 error \(code))")
    }

    /// Words for the libxml2 errors (xmlParserErrors) a broken feed usually gives.
    static let libxml2Reasons: [Int: String] = [
        4: "empty document", 5: "unexpected end of document, or content after the root element",
        9: "invalid character", 23: "';' missing after an entity reference", 26: "undeclared entity",
        38: "'<' in an attribute value", 39: "attribute value not quoted", 40: "unterminated attribute value",
        41: "attribute without a value", 42: "attribute given twice", 65: "space required",
        68: "name expected", 73: "'>' expected", 76: "end tag does not match the open element",
        77: "unfinished tag",
    ]

    private func nonEmpty(_ s: String?) -> String? {
        guard let t = s?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty else { return nil }
        return t
    }
}
