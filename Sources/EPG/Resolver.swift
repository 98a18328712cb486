/// Turns raw programmes into the final per-channel timeline: missing stops, bad stops and overlaps.
struct Resolver {
    let languagePreference: [String]

    func resolve(_ collected: Collector) -> EPGDocument {
        var warnings = collected.warnings
        var byChannel: [String: [RawProgramme]] = [:]
        for raw in collected.programmes { byChannel[raw.channel, default: []].append(raw) }

        var programmes: [Programme] = []
        for channel in byChannel.keys.sorted() {
            let raws = byChannel[channel] ?? []
            if !collected.channelIDs.contains(channel), let first = raws.min(by: { $0.line < $1.line }) {
                warnings.append(
                    EPGWarning(
                        kind: .undeclaredChannel, channel: channel, line: first.line,
                        message: "programmes for channel \"\(channel)\", which has no <channel> element; kept"))
            }
            programmes += timeline(channel, raws, &warnings)
        }
        // By line, then in the order found (explicitly stable).
        warnings = warnings.enumerated()
            .sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }
            .map(\.element)
        return EPGDocument(channels: collected.channels, programmes: programmes, warnings: warnings)
    }

    /// One channel: sort by (start, document order), infer missing stops, drop empty ones, cut overlaps.
    private func timeline(_ channel: String, _ raws: [RawProgramme], _ warnings: inout [EPGWarning]) -> [Programme] {
        let sorted = raws.sorted { ($0.start, $0.line) < ($1.start, $1.line) }
        var resolved: [Programme] = []
        for (index, raw) in sorted.enumerated() {
            var programme = build(raw, &warnings)
            if let stop = raw.stop {
                guard stop > raw.start else {
                    warnings.append(
                        EPGWarning(
                            kind: .stopNotAfterStart, channel: channel, line: raw.line,
                            message: "\(describe(programme)) has stop \(XMLTVTime.iso8601(stop)) not after its start; "
                                + "dropped"))
                    continue
                }
                programme.stop = stop
            } else {
                guard let next = sorted[(index + 1)...].first(where: { $0.start > raw.start }) else {
                    warnings.append(
                        EPGWarning(
                            kind: .lastProgrammeWithoutStop, channel: channel, line: raw.line,
                            message: "\(describe(programme)) has no stop and no later programme follows it; dropped"))
                    continue
                }
                programme.stop = next.start
                programme.stopSource = .nextStart
            }
            cutOverlap(before: programme, in: &resolved, &warnings)
            resolved.append(programme)
        }
        return resolved
    }

    /// If `next` starts before the last kept programme ends, that one is cut to end at `next.start`,
    /// and removed when nothing is left of it.
    private func cutOverlap(before next: Programme, in kept: inout [Programme], _ warnings: inout [EPGWarning]) {
        guard var last = kept.last, next.start < last.stop else { return }
        let original = describe(last)
        last.stop = next.start
        last.truncated = true
        let outcome: String
        if last.stop <= last.start {
            kept.removeLast()
            outcome = "the earlier one is dropped (nothing is left of it)"
        } else {
            kept[kept.count - 1] = last
            outcome = "the earlier one now ends at \(XMLTVTime.iso8601(next.start))"
        }
        warnings.append(
            EPGWarning(
                kind: .overlap, channel: next.channel, line: last.line, otherLine: next.line,
                message: "overlap on channel \"\(next.channel)\": \(original) and \(describe(next)); \(outcome)"))
    }

    private func build(_ raw: RawProgramme, _ warnings: inout [EPGWarning]) -> Programme {
        let (info, undecoded) = EpisodeNumbers.decode(raw.episodeNumbers)
        if raw.titles.isEmpty {
            warnings.append(
                EPGWarning(
                    kind: .missingTitle, channel: raw.channel, line: raw.line,
                    message: "programme at \(XMLTVTime.iso8601(raw.start)) has no <title>; kept with title \"\""))
        }
        for number in undecoded {
            warnings.append(
                EPGWarning(
                    kind: .undecodedEpisodeNumber, channel: raw.channel, line: raw.line,
                    message: "<episode-num system=\"\(number.system)\"> \"\(number.raw)\" not understood; kept raw"))
        }
        return Programme(
            channel: raw.channel, start: raw.start, stop: raw.stop ?? raw.start, title: preferredTitle(raw.titles),
            titles: raw.titles, subTitles: raw.subTitles, descriptions: raw.descriptions, categories: raw.categories,
            episodeNumbers: raw.episodeNumbers, episode: info, line: raw.line)
    }

    private func preferredTitle(_ titles: [LocalizedText]) -> String {
        for wanted in languagePreference {
            let w = wanted.lowercased()
            if let match = titles.first(where: { title in
                guard let lang = title.lang?.lowercased() else { return false }
                return lang == w || lang.hasPrefix(w + "-")
            }) {
                return match.text
            }
        }
        return titles.first?.text ?? ""
    }

    private func describe(_ p: Programme) -> String {
        let stop = p.stop > p.start ? XMLTVTime.iso8601(p.stop) : "?"
        return "\"\(p.title)\" (line \(p.line), \(XMLTVTime.iso8601(p.start))–\(stop))"
    }
}
