/// A piece of text in an optional language, as XMLTV gives titles, descriptions and display names.
public struct LocalizedText: Sendable, Hashable {
    /// The text, with surrounding whitespace trimmed.
    public var text: String
    /// The `lang` attribute as written (e.g. `en`, `de-AT`), or nil when absent.
    public var lang: String?

    /// Creates a text in a language.
    public init(_ text: String, lang: String? = nil) {
        self.text = text
        self.lang = lang
    }
}

/// An `<episode-num>` element as written: its `system` attribute (default `onscreen`) and text.
public struct EpisodeNumber: Sendable, Hashable {
    /// `xmltv_ns`, `onscreen`, `dd_progid`, ... as written.
    public var system: String
    /// The element's text, trimmed.
    public var raw: String

    /// Creates an episode number.
    public init(system: String, raw: String) {
        self.system = system
        self.raw = raw
    }
}

/// Season, episode and part, one-based, decoded from `xmltv_ns` (preferred) or `onscreen` numbers.
public struct EpisodeInfo: Sendable, Hashable {
    /// One-based season number.
    public var season: Int?
    /// Number of seasons, when the source says.
    public var seasonCount: Int?
    /// One-based episode number within the season.
    public var episode: Int?
    /// Number of episodes in the season, when the source says.
    public var episodeCount: Int?
    /// One-based part number.
    public var part: Int?
    /// Number of parts, when the source says.
    public var partCount: Int?

    /// Creates episode information; every field is optional.
    public init(
        season: Int? = nil, seasonCount: Int? = nil, episode: Int? = nil, episodeCount: Int? = nil,
        part: Int? = nil, partCount: Int? = nil
    ) {
        self.season = season
        self.seasonCount = seasonCount
        self.episode = episode
        self.episodeCount = episodeCount
        self.part = part
        self.partCount = partCount
    }

    /// True when no field is set.
    public var isEmpty: Bool {
        season == nil && seasonCount == nil && episode == nil && episodeCount == nil && part == nil && partCount == nil
    }
}

/// An XMLTV `<channel>`.
public struct EPGChannel: Sendable, Hashable {
    /// The XMLTV channel id (the `id` attribute).
    public var id: String
    /// Every `<display-name>`, in document order.
    public var displayNames: [LocalizedText]
    /// The line of the `<channel>` start tag.
    public var line: Int

    /// Creates a channel.
    public init(id: String, displayNames: [LocalizedText], line: Int) {
        self.id = id
        self.displayNames = displayNames
        self.line = line
    }
}

/// How a programme's `stop` was obtained.
public enum StopSource: Sendable, Hashable {
    /// The `stop` attribute, possibly cut short by a later overlapping programme (see `truncated`).
    case explicit
    /// No `stop` attribute: the programme ends at the next later start on its channel.
    case nextStart
}

/// An XMLTV `<programme>`, with times resolved to milliseconds since the Unix epoch (UTC).
///
/// Within one `EPGDocument`, the programmes of a channel are sorted by `start` and never overlap.
public struct Programme: Sendable, Hashable {
    /// The XMLTV channel id (the `channel` attribute).
    public var channel: String
    /// Start, ms since the epoch, UTC. Inclusive.
    public var start: Int64
    /// Stop, ms since the epoch, UTC. Exclusive; always greater than `start`.
    public var stop: Int64
    /// Where `stop` came from.
    public var stopSource: StopSource
    /// True when a later overlapping programme on the same channel cut this one short.
    public var truncated: Bool
    /// The title chosen by the parser's language preference (else the first title; "" if none).
    public var title: String
    /// Every `<title>`, in document order.
    public var titles: [LocalizedText]
    /// Every `<sub-title>`, in document order.
    public var subTitles: [LocalizedText]
    /// Every `<desc>`, in document order.
    public var descriptions: [LocalizedText]
    /// Every `<category>`, in document order.
    public var categories: [LocalizedText]
    /// Every `<episode-num>`, raw.
    public var episodeNumbers: [EpisodeNumber]
    /// Season / episode / part decoded from `episodeNumbers` (empty when none could be decoded).
    public var episode: EpisodeInfo
    /// The line of the `<programme>` start tag.
    public var line: Int

    /// Creates a programme. The lists default to empty; with no `titles`, a non-empty `title` becomes the only one.
    public init(
        channel: String, start: Int64, stop: Int64, stopSource: StopSource = .explicit, truncated: Bool = false,
        title: String, titles: [LocalizedText] = [], subTitles: [LocalizedText] = [],
        descriptions: [LocalizedText] = [], categories: [LocalizedText] = [],
        episodeNumbers: [EpisodeNumber] = [], episode: EpisodeInfo = EpisodeInfo(), line: Int = 0
    ) {
        self.channel = channel
        self.start = start
        self.stop = stop
        self.stopSource = stopSource
        self.truncated = truncated
        self.title = title
        self.titles = titles.isEmpty && !title.isEmpty ? [LocalizedText(title)] : titles
        self.subTitles = subTitles
        self.descriptions = descriptions
        self.categories = categories
        self.episodeNumbers = episodeNumbers
        self.episode = episode
        self.line = line
    }
}

/// Something in the feed that was accepted, repaired or skipped, but that an operator should see.
public struct EPGWarning: Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem.
    public enum Kind: Sendable, Hashable {
        /// Two programmes on one channel overlap; the earlier one was cut to end at the later one's start
        /// (and dropped when nothing was left of it).
        case overlap
        /// The last programme of a channel has no `stop` and nothing follows it: it was dropped.
        case lastProgrammeWithoutStop
        /// `stop` is not after `start`: the programme was dropped.
        case stopNotAfterStart
        /// A programme names a channel that has no `<channel>` element. The programme is kept.
        case undeclaredChannel
        /// A second `<channel>` with an id already seen: ignored, the first one is kept.
        case duplicateChannel
        /// A programme has no `<title>`: kept, with title "".
        case missingTitle
        /// An `<episode-num>` of a known system that could not be decoded: kept raw.
        case undecodedEpisodeNumber
    }

    /// What kind of problem.
    public var kind: Kind
    /// The XMLTV channel id concerned.
    public var channel: String
    /// The line of the element concerned (for an overlap: the earlier programme).
    public var line: Int
    /// For an overlap: the line of the later programme.
    public var otherLine: Int?
    /// A readable explanation naming the programmes involved.
    public var message: String

    /// Creates a warning.
    public init(kind: Kind, channel: String, line: Int, otherLine: Int? = nil, message: String) {
        self.kind = kind
        self.channel = channel
        self.line = line
        self.otherLine = otherLine
        self.message = message
    }

    /// `line N: message`.
    public var description: String { "line \(line): \(message)" }
}

/// Why a feed was rejected. Nothing of a rejected feed is returned.
public struct EPGError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure.
    public enum Kind: Sendable, Hashable {
        /// The bytes are not well-formed XML (or not a supported encoding).
        case notWellFormed
        /// The root element is not `<tv>`.
        case unknownRoot
        /// A required attribute (`channel`'s `id`, `programme`'s `channel` or `start`) is missing or empty.
        case missingAttribute
        /// A `start` or `stop` time is not an XMLTV time.
        case badTime
        /// The document is larger than `EPGLimits.maxBytes`.
        case documentTooLarge
        /// The document has more programmes than `EPGLimits.maxProgrammes`.
        case tooManyProgrammes
    }

    /// What kind of failure.
    public var kind: Kind
    /// The line where it was found (1-based), or nil when it concerns the whole document.
    public var line: Int?
    /// A readable explanation.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, line: Int?, _ message: String) {
        self.kind = kind
        self.line = line
        self.message = message
    }

    /// `line N: message`, or the message alone.
    public var description: String {
        if let line { return "line \(line): \(message)" }
        return message
    }
}

/// Caps that protect the hub from a huge or hostile feed.
public struct EPGLimits: Sendable, Hashable {
    /// Largest accepted document, in bytes. Default 200 MiB.
    public var maxBytes: Int
    /// Most `<programme>` elements accepted. Default 2,000,000.
    public var maxProgrammes: Int

    /// Creates limits.
    public init(maxBytes: Int = 200 * 1024 * 1024, maxProgrammes: Int = 2_000_000) {
        self.maxBytes = maxBytes
        self.maxProgrammes = maxProgrammes
    }
}

/// A parsed XMLTV document.
public struct EPGDocument: Sendable, Hashable {
    /// The `<channel>` elements, in document order (duplicates removed).
    public var channels: [EPGChannel]
    /// The programmes, sorted by channel id, then start. Per channel, they never overlap.
    public var programmes: [Programme]
    /// What was repaired or skipped, in a stable order.
    public var warnings: [EPGWarning]

    /// Creates a document.
    public init(channels: [EPGChannel], programmes: [Programme], warnings: [EPGWarning]) {
        self.channels = channels
        self.programmes = programmes
        self.warnings = warnings
    }
}
