/// Maps XMLTV channel ids to the hub's channel ids.
///
/// An XMLTV id maps to `explicit[id]` when present, else to itself when `identity` is on. When `hubChannels`
/// is given, a target outside it counts as unmapped (the feed names a channel the hub does not carry).
public struct ChannelMapping: Sendable, Hashable {
    /// XMLTV id → hub channel id, from configuration.
    public var explicit: [String: String]
    /// Whether an id absent from `explicit` maps to itself.
    public var identity: Bool
    /// The hub's channel ids, when known: targets outside this set are unmapped.
    public var hubChannels: Set<String>?

    /// Creates a mapping. `ChannelMapping()` maps every id to itself.
    public init(_ explicit: [String: String] = [:], identity: Bool = true, hubChannels: Set<String>? = nil) {
        self.explicit = explicit
        self.identity = identity
        self.hubChannels = hubChannels
    }

    /// The hub channel id for an XMLTV id, or nil when it is unmapped.
    public func hubChannel(for xmltvID: String) -> String? {
        guard let target = explicit[xmltvID] ?? (identity ? xmltvID : nil) else { return nil }
        if let hubChannels, !hubChannels.contains(target) { return nil }
        return target
    }

    /// Applies the mapping to a parsed document.
    public func apply(to document: EPGDocument) -> MappedEPG {
        var ids = Set(document.channels.map(\.id))
        for programme in document.programmes { ids.insert(programme.channel) }
        var byHub: [String: [Programme]] = [:]
        var sources: [String: Set<String>] = [:]
        var unmapped: Set<String> = []
        for id in ids {
            if let target = hubChannel(for: id) {
                sources[target, default: []].insert(id)
            } else {
                unmapped.insert(id)
            }
        }
        for programme in document.programmes {
            guard let target = hubChannel(for: programme.channel) else { continue }
            byHub[target, default: []].append(programme)
        }
        for (target, list) in byHub where (sources[target]?.count ?? 0) > 1 {
            byHub[target] = list.sorted { ($0.start, $0.channel) < ($1.start, $1.channel) }
        }
        let shared = sources.filter { $0.value.count > 1 }.mapValues { $0.sorted() }
        return MappedEPG(programmesByHubChannel: byHub, unmapped: unmapped.sorted(), sharedTargets: shared)
    }
}

/// The programmes of a document keyed by hub channel id, and what could not be mapped.
public struct MappedEPG: Sendable, Hashable {
    /// Hub channel id → its programmes, sorted by start. `Programme.channel` keeps the XMLTV id.
    public var programmesByHubChannel: [String: [Programme]]
    /// XMLTV ids (declared or used by programmes) with no hub channel, sorted. Their programmes are left out.
    public var unmapped: [String]
    /// Hub channel ids that several XMLTV ids map to (their programmes are merged and may overlap), with those
    /// XMLTV ids sorted. Usually a configuration mistake worth showing.
    public var sharedTargets: [String: [String]]

    /// Creates a mapped EPG.
    public init(
        programmesByHubChannel: [String: [Programme]], unmapped: [String], sharedTargets: [String: [String]] = [:]
    ) {
        self.programmesByHubChannel = programmesByHubChannel
        self.unmapped = unmapped
        self.sharedTargets = sharedTargets
    }
}
