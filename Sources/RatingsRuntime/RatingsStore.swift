import ArgusStore
import Foundation
import MongoStore
import Ratings

/// Where ratings live in the store (docs/storage.md, "Ratings"):
///
/// - `ratings_days`: one document per built UTC day: its build version `v`, when it was built,
///   the day's active boxes (a roaring bitmap) and the counts of events left out.
/// - `ratings_cells`: per (day, version, channel): the audience counters of each mode as 1,440
///   little-endian `Int32`s, and per hour the reach bitmaps (≥ 1 minute, ≥ 3 consecutive
///   minutes, and the runs touching the hour's edges).
/// - `ratings_boxes`: the dense box index bitmaps are over (`_id` = box id, `i`).
/// - `ratings_state`: the builder's lease and how far it has read the events.
///
/// A build writes the new version's cells, then points the day at them, then deletes the old
/// version: a reader sees one whole version or the other.
package struct RatingsStore: Sendable {
    package static let daysName = "ratings_days"
    package static let cellsName = "ratings_cells"
    package static let boxesName = "ratings_boxes"
    package static let stateName = "ratings_state"
    /// Reach buckets are hours: reach is exact for any selection of whole hours.
    package static let reachBucketMinutes: Int64 = 60
    package static let dayMinutes: Int64 = 1440

    package let store: MongoStore
    package let days: MongoCollection
    package let cells: MongoCollection
    package let boxes: MongoCollection
    package let state: MongoCollection

    package init(store: MongoStore) {
        self.store = store
        days = store.collection(Self.daysName)
        cells = store.collection(Self.cellsName)
        boxes = store.collection(Self.boxesName)
        state = store.collection(Self.stateName)
    }

    package func createIndexes() async throws {
        try await cells.createIndexes([IndexModel(name: "day_v_seg", keys: ["day": 1, "v": 1, "seg": 1])])
        try await boxes.createIndexes([IndexModel(name: "i", keys: ["i": 1], unique: true)])
    }

    // MARK: - Lease and watermark

    /// Takes or renews the builder's lease; false when another node holds it.
    package func acquireLease(node: String, now: Date, ttl: TimeInterval) async -> Bool {
        await StoreLease(state, id: "builder").acquire(node: node, now: now, ttl: ttl)
    }

    package func releaseLease(node: String) async { await StoreLease(state, id: "builder").release(node: node) }

    /// The receive time up to which events have been looked at.
    package func watermark() async throws -> Int64? {
        try await state.findOne(["_id": "builder"])?["watermark"]?.dateValue?.millis
    }

    package func setWatermark(_ ms: Int64, node: String) async throws {
        _ = try await state.updateOne(["_id": "builder", "node": .string(node)], ["$set": ["watermark": .date(Date(millis: ms))]])
    }

    /// The channels viewed in the last 31 built days (what an EPG feed is mapped against).
    package func recentChannels(now: Int64 = Date().millis) async throws -> Set<String> {
        let today = floorDiv(now, 86_400_000)
        let docs = try await cells.find(["day": ["$gte": .int64(today - 31)], "seg": ["$exists": false]], projection: ["ch": 1])
        return Set(docs.compactMap { $0["ch"]?.stringValue })
    }

    /// The master secret export pseudonyms are derived from: 32 random bytes, made once by
    /// whichever node asks first, kept in `ratings_state` (a secret: whoever reads it can link
    /// pseudonyms back to boxes).
    package func exportMasterKey() async throws -> [UInt8] {
        let fresh = (0..<32).map { _ in UInt8.random(in: 0...255) }
        let d = try await state.findOneAndUpdate(
            ["_id": "export-key"], ["$setOnInsert": ["key": .binary(fresh)]], upsert: true, returnNew: true)
        guard case .binary(let key)? = d?["key"], key.count == 32 else {
            throw RatingsStoreError.corrupt(collection: Self.stateName, id: "export-key", field: "key")
        }
        return key
    }

    // MARK: - Box index

    /// The dense index of each box, assigning the next free ones to boxes not seen before. Only
    /// the lease holder calls it, so indices are never handed out twice.
    package func indices(for devices: Set<String>, known: inout [String: BoxIndex]) async throws {
        if known.isEmpty {
            for d in try await boxes.find([:], projection: ["i": 1]) {
                if let id = d["_id"]?.stringValue, let i = d["i"]?.intValue { known[id] = BoxIndex(i) }
            }
        }
        let fresh = devices.filter { known[$0] == nil }.sorted()
        guard !fresh.isEmpty else { return }
        var next = (known.values.max().map { Int($0) + 1 }) ?? 0
        var docs: [Document] = []
        for id in fresh {
            known[id] = BoxIndex(next)
            docs.append(["_id": .string(id), "i": .int(next)])
            next += 1
        }
        for k in stride(from: 0, to: docs.count, by: 1000) {
            _ = try await boxes.insertMany(Array(docs[k..<min(docs.count, k + 1000)]))
        }
    }

    // MARK: - Days

    /// What a stored day says about itself.
    package struct DayInfo: Sendable, Equatable {
        package var day: Int64
        package var version: Int
        package var builtAt: Int64
        package var active: BoxSet
        package var events: Int
        package var skewed: Int
        package var late: Int
        /// Each segment's active boxes (`model=acme-4k`, …), for the segments built.
        package var segments: [String: BoxSet] = [:]
        /// Cell documents written per segment (`""`: the whole fleet), so a read can tell it got them all.
        package var cellCounts: [String: Int] = [:]
    }

    /// The built days in `range` (day numbers since 1970, UTC).
    package func dayInfos(_ range: Range<Int64>) async throws -> [DayInfo] {
        try await days.find(["_id": ["$gte": .int64(range.lowerBound), "$lt": .int64(range.upperBound)]], sort: ["_id": 1]).map {
            try Self.decodeDay($0)
        }
    }

    static func decodeDay(_ d: Document) throws -> DayInfo {
        func field<T>(_ name: String, _ value: T?) throws -> T {
            guard let value else { throw RatingsStoreError.corrupt(collection: daysName, id: "\(d["_id"].map { "\($0)" } ?? "?")", field: name) }
            return value
        }
        let id = try field("_id", d["_id"]?.intValue.map(Int64.init))
        guard case .binary(let bytes)? = d["active"], let active = try? BoxSet(serialized: bytes) else {
            throw RatingsStoreError.corrupt(collection: daysName, id: "\(id)", field: "active")
        }
        var segments: [String: BoxSet] = [:]
        for entry in d["segments"]?.arrayValue ?? [] {
            guard case .document(let e) = entry, let key = e["k"]?.stringValue, case .binary(let bytes)? = e["a"],
                let set = try? BoxSet(serialized: bytes)
            else { throw RatingsStoreError.corrupt(collection: daysName, id: "\(id)", field: "segments") }
            segments[key] = set
        }
        var cellCounts: [String: Int] = [:]
        for entry in d["cellCounts"]?.arrayValue ?? [] {
            guard case .document(let e) = entry, let key = e["k"]?.stringValue, let n = e["n"]?.intValue else {
                throw RatingsStoreError.corrupt(collection: daysName, id: "\(id)", field: "cellCounts")
            }
            cellCounts[key] = n
        }
        return DayInfo(
            day: id, version: try field("v", d["v"]?.intValue), builtAt: try field("builtAt", d["builtAt"]?.dateValue?.millis),
            active: active, events: d["events"]?.intValue ?? 0, skewed: d["skewed"]?.intValue ?? 0, late: d["late"]?.intValue ?? 0,
            segments: segments, cellCounts: cellCounts)
    }

    /// Stores a day's rollups as version `info.version` (`""`: every box; `model=acme-4k` and so
    /// on: a segment's boxes), then makes it the day's current one.
    package func write(_ rollups: [String: Rollup], _ info: DayInfo) async throws {
        var docs: [Document] = []
        var counts: [BSON] = []
        for (segment, rollup) in rollups.sorted(by: { $0.key < $1.key }) {
            let cells = cellDocuments(rollup, info, segment: segment)
            docs += cells
            counts.append(["k": .string(segment), "n": .int(cells.count)])
        }
        _ = try await cells.deleteMany(["day": .int64(info.day), "v": .int(info.version)])  // a build that stopped halfway
        for k in stride(from: 0, to: docs.count, by: 200) { _ = try await cells.insertMany(Array(docs[k..<min(docs.count, k + 200)])) }
        let segments: [BSON] = info.segments.sorted { $0.key < $1.key }.map { key, set in
            .document(["k": .string(key), "a": .binary(set.serialized())])
        }
        _ = try await days.updateOne(
            ["_id": .int64(info.day)],
            [
                "$set": [
                    "v": .int(info.version), "builtAt": .date(Date(millis: info.builtAt)), "active": .binary(info.active.serialized()),
                    "events": .int(info.events), "skewed": .int(info.skewed), "late": .int(info.late), "channels": .int(docs.count),
                    "segments": .array(segments), "cellCounts": .array(counts),
                ]
            ], upsert: true)
        _ = try await cells.deleteMany(["day": .int64(info.day), "v": ["$ne": .int(info.version)]])
    }

    /// One document per channel of `rollup`.
    func cellDocuments(_ rollup: Rollup, _ info: DayInfo, segment: String) -> [Document] {
        let dayStart = info.day * Self.dayMinutes
        var byChannel: [String: (aud: [ViewingMode: [Int32]], reach: [(Int64, Rollup.ReachCell)])] = [:]
        for (key, count) in rollup.audience {
            let m = Int(key.minute - dayStart)
            guard (0..<Int(Self.dayMinutes)).contains(m) else { continue }
            var entry = byChannel[key.channel] ?? ([:], [])
            entry.aud[key.mode, default: [Int32](repeating: 0, count: Int(Self.dayMinutes))][m] = Int32(clamping: count)
            byChannel[key.channel] = entry
        }
        for (key, cell) in rollup.reach {
            byChannel[key.channel, default: ([:], [])].reach.append((key.bucket, cell))
        }
        var docs: [Document] = []
        for (channel, entry) in byChannel.sorted(by: { $0.key < $1.key }) {
            var aud = Document()
            for (mode, counts) in entry.aud.sorted(by: { $0.key < $1.key }) { aud[mode.rawValue] = .binary(Self.int32s(counts)) }
            let reach: [BSON] = entry.reach.sorted { $0.0 < $1.0 }.map { bucket, cell in
                .document([
                    "b": .int64(bucket), "r": .binary(cell.reached.serialized()), "r3": .binary(cell.run3.serialized()),
                    "h1": .binary(BoxSet(cell.head.keys).serialized()), "h2": .binary(BoxSet(cell.head.filter { $0.value >= 2 }.keys).serialized()),
                    "t1": .binary(BoxSet(cell.tail.keys).serialized()), "t2": .binary(BoxSet(cell.tail.filter { $0.value >= 2 }.keys).serialized()),
                ])
            }
            var d: Document = [
                "_id": .string("\(info.day)|\(info.version)|\(segment)|\(channel)"), "day": .int64(info.day), "v": .int(info.version),
                "ch": .string(channel), "aud": .document(aud), "reach": .array(reach),
            ]
            if !segment.isEmpty { d["seg"] = .string(segment) }
            docs.append(d)
        }
        return docs
    }

    /// The rollup of one stored day version: every box (`segment` `""`) or one segment's. A read
    /// that returns fewer cells than the build wrote (the store answered short) is retried, then
    /// refused, rather than answered from part of the day.
    package func rollup(_ info: DayInfo, segment: String = "") async throws -> Rollup {
        try rollup(day: info.day, cells: try await cellDocuments(info, segment: segment))
    }

    /// The same day in the form queries read (`DenseDay`): straight from the stored arrays and
    /// bitmaps, with no per-minute or per-box dictionaries in between.
    package func denseDay(_ info: DayInfo, segment: String = "", spans: [Range<Int>] = []) async throws -> DenseDay {
        var day = try DenseDay(day: info.day, bucketMinutes: Self.reachBucketMinutes)
        let firstBucket = info.day * Self.dayMinutes / Self.reachBucketMinutes
        for cell in try await cellDocuments(info, segment: segment).map(Self.decodeCell) {
            for (mode, counts) in cell.audience { day.setAudience(channel: cell.channel, mode: mode, counts: counts) }
            for (bucket, sets) in cell.reach { day.setBucket(channel: cell.channel, index: Int(bucket - firstBucket), sets) }
        }
        day.finish(spans: spans)
        return day
    }

    /// One stored cell document: its channel, each mode's 1,440 minute counts, and each hour's sets.
    static func decodeCell(_ d: Document) throws -> (channel: String, audience: [(ViewingMode, [Int32])], reach: [(Int64, DenseDay.Bucket)]) {
        let id = d["_id"]?.stringValue ?? "?"
        func corrupt(_ field: String) -> RatingsStoreError { .corrupt(collection: cellsName, id: id, field: field) }
        guard let channel = d["ch"]?.stringValue else { throw corrupt("ch") }
        var audience: [(ViewingMode, [Int32])] = []
        if case .document(let aud)? = d["aud"] {
            for (name, value) in aud {
                guard let mode = ViewingMode(rawValue: name), case .binary(let bytes) = value, bytes.count == Int(dayMinutes) * 4 else {
                    throw corrupt("aud.\(name)")
                }
                audience.append((mode, int32s(bytes)))
            }
        }
        var reach: [(Int64, DenseDay.Bucket)] = []
        for entry in d["reach"]?.arrayValue ?? [] {
            guard case .document(let r) = entry, let bucket = r["b"]?.intValue.map(Int64.init) else { throw corrupt("reach.b") }
            func set(_ f: String) throws -> BoxSet {
                guard case .binary(let bytes)? = r[f], let s = try? BoxSet(serialized: bytes) else { throw corrupt("reach.\(f)") }
                return s
            }
            reach.append(
                (
                    bucket,
                    DenseDay.Bucket(
                        reached: try set("r"), run3: try set("r3"), head1: try set("h1"), head2: try set("h2"), tail1: try set("t1"), tail2: try set("t2"))
                ))
        }
        return (channel, audience, reach)
    }

    /// The cell documents of one stored day version and segment, all of them or an error.
    func cellDocuments(_ info: DayInfo, segment: String) async throws -> [Document] {
        let seg: BSON = segment.isEmpty ? ["$exists": false] : .string(segment)
        let filter: Document = ["day": .int64(info.day), "v": .int(info.version), "seg": seg]
        var docs = try await cells.find(filter)
        if let expected = info.cellCounts[segment] ?? (segment.isEmpty ? nil : 0) {
            var attempt = 1
            while docs.count != expected {
                guard attempt < 3 else { throw RatingsStoreError.incomplete(collection: Self.cellsName, read: docs.count, written: expected) }
                attempt += 1
                docs = try await cells.find(filter)
            }
        }
        return docs
    }

    func rollup(day: Int64, cells docs: [Document]) throws -> Rollup {
        var rollup = try Rollup(bucketMinutes: Self.reachBucketMinutes)
        let dayStart = day * Self.dayMinutes
        for cell in try docs.map(Self.decodeCell) {
            for (mode, counts) in cell.audience {
                for (m, count) in counts.enumerated() where count > 0 {
                    rollup.audience[Rollup.AudienceKey(channel: cell.channel, mode: mode, minute: dayStart + Int64(m))] = Int(count)
                }
            }
            for (bucket, sets) in cell.reach {
                var c = Rollup.ReachCell()
                c.reached = sets.reached
                c.run3 = sets.run3
                for b in sets.head1 { c.head[b] = sets.head2.contains(b) ? 2 : 1 }
                for b in sets.tail1 { c.tail[b] = sets.tail2.contains(b) ? 2 : 1 }
                rollup.reach[Rollup.ReachKey(channel: cell.channel, bucket: bucket)] = c
            }
        }
        return rollup
    }

    package static func int32s(_ values: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 4)
        for v in values {
            let u = UInt32(bitPattern: v)
            out.append(contentsOf: [
                UInt8(truncatingIfNeeded: u), UInt8(truncatingIfNeeded: u >> 8), UInt8(truncatingIfNeeded: u >> 16), UInt8(truncatingIfNeeded: u >> 24),
            ])
        }
        return out
    }

    package static func int32s(_ bytes: [UInt8]) -> [Int32] {
        stride(from: 0, to: bytes.count - 3, by: 4).map { i in
            Int32(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
        }
    }
}

/// A stored ratings document that does not decode: which, and what is wrong.
package enum RatingsStoreError: Error, CustomStringConvertible, Equatable {
    case corrupt(collection: String, id: String, field: String)
    /// The store returned fewer documents than are known to exist.
    case incomplete(collection: String, read: Int, written: Int)

    package var description: String {
        switch self {
        case .corrupt(let c, let id, let f): "\(c) document \(id): field \(f) is missing or malformed"
        case .incomplete(let c, let read, let written): "\(c): the store returned \(read) of \(written) documents; not answering from part of them"
        }
    }
}
