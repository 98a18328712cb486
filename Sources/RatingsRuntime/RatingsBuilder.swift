import ArgusStore
import ArgusSupport
import Foundation
import Logging
import Metrics
import MongoStore
import Ratings
import ServiceLifecycle

package struct RatingsSettings: Sendable {
    /// How often the lease holder looks for new events and rebuilds the days they touch.
    package var interval: Duration = .seconds(60)
    /// How long a lease lasts without renewal.
    package var leaseSeconds: TimeInterval = 180
    /// Events received up to this long before the watermark are looked at again (the telemetry
    /// applier may store an event a little after it was received).
    package var rescanMs: Int64 = 120_000
    /// Most events looked at per period to find the days to rebuild.
    package var scanLimit = 200_000
    /// How far before a day its events are read, to know what was on at midnight.
    package var lookbackMs: Int64 = 86_400_000
    package var parameters = RatingsParameters.default
    /// Segment dimensions built besides the whole fleet (each value gets its own rollups).
    package var segments: [SegmentDimension] = []
    /// Most values of one dimension built per day (the ones with the most boxes); the rest are
    /// counted in the fleet's figures only.
    package var maxSegmentValues = 100

    package init(interval: Duration = .seconds(60), segments: [SegmentDimension] = []) {
        self.interval = interval
        self.segments = segments
    }
}

/// A box attribute ratings can be cut by. Values are the box's current ones (from its latest
/// `hello` and its registration), applied to every day rebuilt.
package enum SegmentDimension: String, Sendable, CaseIterable {
    case model, firmware, tag

    /// The stored segment key of a value, e.g. `model=acme-4k`.
    package func key(_ value: String) -> String { "\(rawValue)=\(value)" }
}

/// Builds the stored rollups from the stored viewing events (docs/ratings-method.md, "Rollups"):
/// a Service on every node, of which only the holder of the store lease builds. Every period it
/// reads the events received since its watermark, works out which UTC days they touch, and
/// rebuilds those days from all their events: a box seen by two nodes, or that moved between
/// them, counts once, and a rebuild gives the same documents.
package final class RatingsBuilder: Service, Sendable {
    package let store: RatingsStore
    let events: MongoCollection
    let node: String
    let settings: RatingsSettings
    let logger: Logger
    let gate: ReadinessGate?
    let now: @Sendable () -> Int64
    let built = Counter(label: "argus_ratings_days_built_total")
    let buildSeconds = Metrics.Timer(label: "argus_ratings_day_build_seconds")
    let skewed = Gauge(label: "argus_ratings_events_not_credited", dimensions: [("reason", "skewed")])
    let late = Gauge(label: "argus_ratings_events_not_credited", dimensions: [("reason", "late")])

    package init(
        store: MongoStore, node: String, settings: RatingsSettings = .init(), gate: ReadinessGate? = nil, logger: Logger,
        now: @escaping @Sendable () -> Int64 = { Date().millis }
    ) {
        self.store = RatingsStore(store: store)
        events = store.collection(Schema.events)
        self.node = node
        self.settings = settings
        self.logger = logger
        self.gate = gate
        self.now = now
    }

    package func run() async throws {
        if let gate {
            guard await cancelWhenGracefulShutdown({ await gate.wait() }) == true else { return }
        }
        try? await store.createIndexes()
        var known: [String: BoxIndex] = [:]
        var seen = Set<String>()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if await store.acquireLease(node: node, now: Date(millis: now()), ttl: settings.leaseSeconds) {
                do { try await buildOnce(known: &known, seen: &seen) } catch {
                    logger.warning("ratings build failed; retrying next period", metadata: [LogKey.error: .string("\(error)")])
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.settings.interval) }
        }
        await store.releaseLease(node: node)
    }

    /// One period: the days touched by events received since the watermark are rebuilt.
    package func buildOnce(known: inout [String: BoxIndex]) async throws {
        var seen = Set<String>()
        try await buildOnce(known: &known, seen: &seen)
    }

    /// One period. `seen` holds the ids of the events in the rescan window that earlier periods
    /// already counted: they are read again (a slow insert may land behind the watermark) but do
    /// not make their day dirty again, so with no new events nothing is rebuilt.
    package func buildOnce(known: inout [String: BoxIndex], seen: inout Set<String>) async throws {
        let from = (try await store.watermark() ?? 0) - settings.rescanMs
        let today = floorDiv(now(), RatingsParameters.minuteMs * RatingsStore.dayMinutes)
        var dirty = Set<Int64>()
        var newest = from
        // Read in pages of `scanLimit`, in receive order, so memory stays bounded however many
        // events arrived since (a first start over months of events, a long outage). Only
        // the days they touch are kept.
        var cursor = from
        var window: [(id: String, r: Int64)] = []  // the events read, pruned to the trailing rescan window
        while true {
            let page = try await events.find(
                ["r": ["$gt": .date(Date(millis: cursor))]], sort: ["r": 1], limit: settings.scanLimit, projection: ["t": 1, "r": 1, "o": 1])
            for e in page {
                guard let t = e["t"]?.dateValue?.millis, let r = e["r"]?.dateValue?.millis else { continue }
                newest = max(newest, r)
                let id = e["_id"].map { "\($0)" } ?? ""
                window.append((id, r))
                if window.count > 2 * settings.scanLimit { window.removeAll { $0.r <= newest - settings.rescanMs } }
                guard !seen.contains(id) else { continue }
                let event = RatedEvent(boxTime: t, receivedAt: r, kind: .leave)
                guard case .credited(let placed) = ClockCorrection.place(event, offsetMs: Int64(e["o"]?.intValue ?? 0), parameters: settings.parameters)
                else {
                    // Not credited (skewed or late): counted on the day it was received.
                    dirty.insert(floorDiv(r, RatingsParameters.minuteMs * RatingsStore.dayMinutes))
                    continue
                }
                let day = floorDiv(placed.time, RatingsParameters.minuteMs * RatingsStore.dayMinutes)
                dirty.insert(day)
                if day < today { dirty.insert(day + 1) }  // a tune may run on past midnight
            }
            guard page.count == settings.scanLimit, let last = page.last?["r"]?.dateValue?.millis else { break }
            // Events received in the same millisecond as the page's last may be split across
            // pages; re-reading that millisecond would loop, so the next page starts just before it.
            cursor = max(cursor + 1, last - 1)
        }
        // A day built while a tune was still open (before the day's end + the cap) is rebuilt at
        // most once a minute until it is final: credit for a tune still running when its box
        // went quiet then reaches its cap without a new event, and today's live minute moves on.
        let dayMs = RatingsParameters.minuteMs * RatingsStore.dayMinutes
        let at = now()
        for info in try await store.dayInfos((today - 2)..<(today + 1))
        where info.builtAt < (info.day + 1) * dayMs + settings.parameters.capMs && at - info.builtAt >= RatingsParameters.minuteMs {
            dirty.insert(info.day)
        }
        guard !dirty.isEmpty || newest > from else { return }
        for day in dirty.sorted() { try await build(day: day, known: &known) }
        try await store.setWatermark(newest, node: node)
        // The next period rescans from `newest − rescanMs`: remember what is in that window.
        seen = Set(window.filter { $0.r > newest - settings.rescanMs }.map(\.id))
    }

    /// Rebuilds one UTC day from the stored events.
    package func build(day: Int64, known: inout [String: BoxIndex]) async throws {
        let started = ContinuousClock.now
        let p = settings.parameters
        let dayMs = RatingsParameters.minuteMs * RatingsStore.dayMinutes
        let start = day * dayMs, end = start + dayMs
        let at = now()
        let (docCount, byBox) = try await dayEvents(day)
        try await store.indices(for: Set(byBox.keys), known: &known)
        let horizon = min(at, end + dayMs)
        let dayMinutes = MinuteSelection(floorDiv(start, RatingsParameters.minuteMs)..<floorDiv(end, RatingsParameters.minuteMs))
        var credits: [BoxCredits] = []
        var active: [BoxIndex] = []
        var skewedCount = 0, lateCount = 0
        for (device, list) in byBox {
            guard let index = known[device] else { continue }
            let connections = StoredViewing.connections(list)
            let r = MinuteCrediting.credits(connections: connections, horizon: horizon, parameters: p)
            let mine = r.credits.filter { dayMinutes.contains($0.minute) }
            var isActive = !mine.isEmpty
            for c in connections {
                for e in c.events {
                    switch ClockCorrection.place(e, offsetMs: c.offsetMs, parameters: p) {
                    case .credited(let placed): if placed.time >= start && placed.time < end { isActive = true }
                    case .skewed: if e.receivedAt >= start && e.receivedAt < end { skewedCount += 1 }
                    case .late: if e.receivedAt >= start && e.receivedAt < end { lateCount += 1 }
                    }
                }
            }
            if isActive { active.append(index) }
            if !mine.isEmpty { credits.append(BoxCredits(box: index, credits: mine)) }
        }
        var rollups = ["": try Rollup.build(credits, bucketMinutes: RatingsStore.reachBucketMinutes)]
        var segmentActive: [String: BoxSet] = [:]
        if !settings.segments.isEmpty {
            let activeSet = BoxSet(active)
            for (key, members) in try await segmentMembers(Array(byBox.keys), known: known) {
                rollups[key] = try Rollup.build(credits.filter { members.contains($0.box) }, bucketMinutes: RatingsStore.reachBucketMinutes)
                segmentActive[key] = BoxSet(activeSet.lazy.filter { members.contains($0) })
            }
        }
        let previous = try await store.dayInfos(day..<(day + 1)).first?.version ?? 0
        let info = RatingsStore.DayInfo(
            day: day, version: previous + 1, builtAt: at, active: BoxSet(active), events: docCount, skewed: skewedCount, late: lateCount,
            segments: segmentActive)
        try await store.write(rollups, info)
        built.increment()
        skewed.record(skewedCount)
        late.record(lateCount)
        buildSeconds.record(ContinuousClock.now - started)
        logger.debug(
            "ratings day built",
            metadata: [LogKey.count: .stringConvertible(docCount), LogKey.boxes: .stringConvertible(byBox.count), LogKey.day: .stringConvertible(day)])
    }
}

extension RatingsBuilder {
    /// The stored events a day's credit depends on, by box, and how many were read. Credited
    /// events of the day were received at most the future skew before it and at most the late
    /// horizon after it; the lookback covers what was on at midnight.
    func dayEvents(_ day: Int64) async throws -> (Int, [String: [StoredViewing]]) {
        let p = settings.parameters
        let dayMs = RatingsParameters.minuteMs * RatingsStore.dayMinutes
        let start = day * dayMs, end = start + dayMs
        let filter: Document = [
            "r": ["$gte": .date(Date(millis: start - settings.lookbackMs - p.futureSkewToleranceMs)), "$lt": .date(Date(millis: end + p.lateHorizonMs))]
        ]
        // Events are only ever added (until their TTL): a read must return at least as many as
        // were counted before it, or the store answered short and the day is not built from it.
        let counted = try await events.count(filter)
        var docs: [Document] = []
        for attempt in 1...3 {
            docs = try await events.find(filter, projection: ["d": 1, "b": 1, "s": 1, "t": 1, "r": 1, "e": 1, "ch": 1, "mode": 1, "o": 1])
            if docs.count >= counted { break }
            guard attempt < 3 else { throw RatingsStoreError.incomplete(collection: Schema.events, read: docs.count, written: counted) }
        }
        var byBox: [String: [StoredViewing]] = [:]
        for d in docs { if let v = StoredViewing(d) { byBox[v.device, default: []].append(v) } }
        return (docs.count, byBox)
    }

    /// Each box's credited minutes of one UTC day, recomputed from the stored events (for
    /// exports: the rollups keep no per-box minutes).
    package func credits(day: Int64) async throws -> [String: [MinuteCredit]] {
        let dayMs = RatingsParameters.minuteMs * RatingsStore.dayMinutes
        let (_, byBox) = try await dayEvents(day)
        let horizon = min(now(), (day + 2) * dayMs)
        let minutes = (day * RatingsStore.dayMinutes)..<((day + 1) * RatingsStore.dayMinutes)
        var out: [String: [MinuteCredit]] = [:]
        for (device, list) in byBox {
            let c = MinuteCrediting.credits(connections: StoredViewing.connections(list), horizon: horizon, parameters: settings.parameters)
                .credits.filter { minutes.contains($0.minute) }
            if !c.isEmpty { out[device] = c }
        }
        return out
    }

    /// The boxes of each segment value among `devices`, from the registry (model, firmware,
    /// tags); per dimension only the `maxSegmentValues` values with the most boxes.
    func segmentMembers(_ devices: [String], known: [String: BoxIndex]) async throws -> [String: BoxSet] {
        let collection = store.store.collection(Schema.devices)
        var byKey: [SegmentDimension: [String: [BoxIndex]]] = [:]
        for k in stride(from: 0, to: devices.count, by: 200) {
            let chunk = devices[k..<min(devices.count, k + 200)].map { BSON.string($0) }
            for d in try await collection.find(["_id": ["$in": .array(chunk)]], projection: ["model": 1, "firmware": 1, "tags": 1]) {
                guard let id = d["_id"]?.stringValue, let index = known[id] else { continue }
                for dim in settings.segments {
                    let values: [String] =
                        switch dim {
                        case .model: d["model"]?.stringValue.map { [$0] } ?? []
                        case .firmware: d["firmware"]?.stringValue.map { [$0] } ?? []
                        case .tag: d["tags"]?.arrayValue?.compactMap(\.stringValue) ?? []
                        }
                    for v in Set(values) { byKey[dim, default: [:]][v, default: []].append(index) }
                }
            }
        }
        var out: [String: BoxSet] = [:]
        for (dim, values) in byKey {
            let kept = values.sorted { ($0.value.count, $1.key) > ($1.value.count, $0.key) }.prefix(settings.maxSegmentValues)
            for (v, boxes) in kept { out[dim.key(v)] = BoxSet(boxes) }
        }
        return out
    }
}

/// A stored viewing event, as the builder reads it.
struct StoredViewing {
    var device: String
    var boot: String
    var seq: Int64
    var offset: Int64
    var event: RatedEvent

    init?(_ d: Document) {
        guard let device = d["d"]?.stringValue, let boot = d["b"]?.stringValue, let seq = d["s"]?.intValue,
            let t = d["t"]?.dateValue?.millis, let r = d["r"]?.dateValue?.millis, let kind = Self.kind(d)
        else { return nil }
        self.device = device
        self.boot = boot
        self.seq = Int64(seq)
        offset = Int64(d["o"]?.intValue ?? 0)
        event = RatedEvent(boxTime: t, receivedAt: r, kind: kind)
    }

    static func kind(_ d: Document) -> RatedKind? {
        switch d["e"]?.stringValue {
        case "tune":
            guard let ch = d["ch"]?.stringValue else { return nil }
            return .tune(channel: ch, mode: d["mode"]?.stringValue.flatMap(ViewingMode.init(rawValue:)) ?? .live)
        case "leave": return .leave
        case "standby_on": return .standbyOn
        case "standby_off": return .standbyOff
        case "play_start": return .playStart
        case "play_stop": return .playStop
        case "play_error": return .playError
        case "app_crash": return .appCrash
        case "portal_reload": return .portalReload
        default: return nil
        }
    }

    /// A box's events as connections: one per (boot, clock offset), in the order they were
    /// received, events in `seq` order.
    static func connections(_ list: [StoredViewing]) -> [ConnectionLog] {
        var groups: [String: [StoredViewing]] = [:]
        for v in list { groups["\(v.boot)|\(v.offset)", default: []].append(v) }
        return groups.values.map { g in g.sorted { $0.seq < $1.seq } }
            .sorted { ($0.map(\.event.receivedAt).min() ?? 0, $0[0].boot) < ($1.map(\.event.receivedAt).min() ?? 0, $1[0].boot) }
            .map { g in ConnectionLog(helloBoxTime: 0, helloReceivedAt: g[0].offset, events: g.map(\.event)) }
    }
}
