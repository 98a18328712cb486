import Foundation

/// The programmes of one channel as minute slots, for programme ratings.
///
/// Minute `m` is the clock minute `[m·60000, (m+1)·60000)` ms since the epoch (UTC). A programme covers
/// minute `m` when the minute's start `m·60000` lies in `[start, stop)`. So a programme 19:00:30–19:31:10
/// covers the minutes starting 19:01 … 19:31, and one shorter than a minute may cover none. Programmes that do
/// not overlap never share a minute.
public struct ProgrammeSlots: Sendable {
    /// The programmes, sorted by start. Overlaps (possible only for input not from `XMLTVParser`) are cut
    /// as the parser does: the earlier programme ends at the later one's start, and is dropped if empty.
    public let programmes: [Programme]
    private let foldedTitles: [[String]]

    /// Builds the slots of one channel's programmes.
    public init(_ programmes: [Programme]) {
        var kept: [Programme] = []
        for programme in programmes.sorted(by: { ($0.start, $0.line) < ($1.start, $1.line) })
        where programme.stop > programme.start {
            if var last = kept.last, programme.start < last.stop {
                last.stop = programme.start
                last.truncated = true
                kept.removeLast()
                if last.stop > last.start { kept.append(last) }
            }
            kept.append(programme)
        }
        self.programmes = kept
        self.foldedTitles = kept.map { p in
            (p.titles.isEmpty ? [p.title] : p.titles.map(\.text)).map(ProgrammeSlots.fold)
        }
    }

    /// The minute indices a programme covers: `ceil(start / 60000) ..< ceil(stop / 60000)`. May be empty.
    public static func minutes(of programme: Programme) -> Range<Int64> {
        let first = ceilDiv(programme.start, 60_000)
        let end = ceilDiv(programme.stop, 60_000)
        return first..<max(first, end)
    }

    /// The programme on air at the start of minute `minute`, or nil.
    public func programme(atMinute minute: Int64) -> Programme? {
        programme(at: minute * 60_000)
    }

    /// The programme on air at an instant (ms since the epoch, UTC): the one with `start <= ms < stop`.
    public func programme(at millis: Int64) -> Programme? {
        // Last programme whose start is <= millis (binary search).
        var low = 0
        var high = programmes.count
        while low < high {
            let mid = (low + high) / 2
            if programmes[mid].start <= millis { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let candidate = programmes[low - 1]
        return millis < candidate.stop ? candidate : nil
    }

    /// The programmes overlapping `[from, to)` (ms since the epoch), in start order.
    public func programmes(from: Int64, to: Int64) -> [Programme] {
        programmes.filter { $0.start < to && $0.stop > from }
    }

    /// Programmes any of whose titles (in any language) contain `query`, ignoring case and diacritics
    /// ("tatort" finds "Tätort"), in start order. An empty query finds nothing.
    public func search(title query: String) -> [Programme] {
        let needle = ProgrammeSlots.fold(query.trimmingCharacters(in: .whitespacesAndNewlines))
        guard !needle.isEmpty else { return [] }
        return zip(programmes, foldedTitles).filter { _, titles in titles.contains { $0.contains(needle) } }.map(\.0)
    }

    /// Groups programmes (e.g. `EPGDocument.programmes`) by their `channel`.
    public static func byChannel(_ programmes: [Programme]) -> [String: ProgrammeSlots] {
        Dictionary(grouping: programmes, by: \.channel).mapValues { ProgrammeSlots($0) }
    }

    static func fold(_ s: String) -> String {
        s.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil)
    }
}
