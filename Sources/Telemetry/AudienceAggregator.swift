import STBProtocol

/// Turns viewing events into audience counters per channel per minute, in memory.
///
/// Each box has a state: watching a channel since some time, or not (left, standby). Time a
/// box spends watching is attributed to (channel, minute) as it passes; `close(before:)`
/// hands out every minute that ended before a time and forgets it. A box that has not been
/// heard from for `staleAfter` stops counting (it may be off or gone). Events must arrive
/// roughly in time order per box; an event older than what was already attributed changes
/// the state but not the past.
public struct AudienceAggregator: Sendable {
    struct Box {
        var channel: String?
        var cursor: Int64
        var lastHeard: Int64
    }
    struct Key: Hashable { var channel: String; var minute: Int64 }
    struct Tally { var seconds: Double = 0; var viewers: Set<String> = []; var errorBoxes: Set<String> = [] }

    private var boxes: [String: Box] = [:]
    private var tallies: [Key: Tally] = [:]
    /// Minutes before this have been handed out.
    private var closedBefore: Int64 = .min
    public let staleAfter: Int64

    public init(staleAfterMillis: Int64 = 5 * 60_000) { staleAfter = staleAfterMillis }

    /// Boxes being tracked.
    public var trackedBoxes: Int { boxes.count }

    static func minute(of t: Int64) -> Int64 { t - ((t % 60_000) + 60_000) % 60_000 }

    /// Any message from a box: it is alive at `ts`.
    public mutating func heard(_ device: String, at ts: Int64) {
        if var b = boxes[device] {
            attribute(device, &b, until: ts)
            b.lastHeard = max(b.lastHeard, ts)
            boxes[device] = b
        }
    }

    /// A viewing event from a box at `ts`.
    public mutating func apply(_ device: String, _ event: ViewingEvent, at ts: Int64) {
        var b = boxes[device] ?? Box(channel: nil, cursor: ts, lastHeard: ts)
        attribute(device, &b, until: ts)
        b.lastHeard = max(b.lastHeard, ts)
        switch event.kind {
        case .tune:
            b.channel = event.channel
        case .leave, .standbyOn:
            b.channel = nil
        case .playError:
            if let ch = event.channel ?? b.channel, Self.minute(of: ts) >= closedBefore {
                tallies[Key(channel: ch, minute: Self.minute(of: ts)), default: Tally()].errorBoxes.insert(device)
            }
        case .standbyOff, .playStart, .playStop, .appCrash, .portalReload:
            break
        }
        if b.cursor < ts { b.cursor = ts }
        boxes[device] = b
    }

    /// Attributes the box's watching from its cursor up to `t` (not past its staleness limit).
    private mutating func attribute(_ device: String, _ b: inout Box, until t: Int64) {
        let end = min(t, b.lastHeard + staleAfter)
        guard let ch = b.channel, end > b.cursor else {
            if t > b.cursor { b.cursor = t }
            return
        }
        var from = max(b.cursor, closedBefore == .min ? b.cursor : closedBefore)
        while from < end {
            let m = Self.minute(of: from)
            let to = min(end, m + 60_000)
            let secs = Double(to - from) / 1000
            var tally = tallies[Key(channel: ch, minute: m), default: Tally()]
            tally.seconds += secs
            if secs >= 1 { tally.viewers.insert(device) }
            tallies[Key(channel: ch, minute: m)] = tally
            from = to
        }
        b.cursor = max(b.cursor, t)
    }

    /// Hands out every minute that ended at or before `time`, attributing watching up to it.
    public mutating func close(before time: Int64) -> [AudienceCount] {
        let cut = Self.minute(of: time)
        for (device, var b) in boxes {
            attribute(device, &b, until: cut)
            if b.channel == nil && b.lastHeard + staleAfter < cut { boxes[device] = nil } else { boxes[device] = b }
        }
        closedBefore = max(closedBefore, cut)
        var out: [AudienceCount] = []
        for (k, t) in tallies where k.minute < cut {
            out.append(
                AudienceCount(
                    channel: k.channel, minute: k.minute, viewers: t.viewers.count,
                    seconds: (t.seconds * 1000).rounded() / 1000, errorBoxes: t.errorBoxes.count))
            tallies[k] = nil
        }
        return out.sorted { ($0.minute, $0.channel) < ($1.minute, $1.channel) }
    }
}
