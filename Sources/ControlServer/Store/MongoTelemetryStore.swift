import Foundation
import MongoStore
import STBProtocol
import Telemetry

/// Retention of telemetry, in days, enforced by TTL indexes.
struct RetentionConfiguration: Sendable {
    var metricsDays = 30
    var eventsDays = 90
    var logsDays = 14
    var audienceDays = 400
}

/// The telemetry collections, written by ``TelemetryApplier``. See docs/storage.md.
struct MongoTelemetryStore: TelemetryStore {
    let events: MongoCollection
    let logs: MongoCollection
    let metrics: MongoCollection
    let audience: MongoCollection

    init(store: MongoStore) {
        events = store.collection(Schema.events)
        logs = store.collection(Schema.logs)
        metrics = store.collection(Schema.metrics)
        audience = store.collection(Schema.audience)
    }

    static func date(_ ms: Int64) -> BSON { .date(Date(timeIntervalSince1970: Double(ms) / 1000)) }

    func insertEvents(_ list: [StoredEvent]) async throws -> [Bool] {
        let docs: [Document] = list.map { e in
            var d: Document = ["_id": .string(e.key), "d": .string(e.deviceID), "b": .string(e.bootId), "s": .int64(e.seq),
                               "t": Self.date(e.ts), "r": Self.date(e.receivedAt), "e": .string(e.event.kind.rawValue)]
            if let ch = e.event.channel { d["ch"] = .string(ch) }
            if let c = e.event.code { d["code"] = .string(c) }
            return d
        }
        let r = try await events.insertMany(docs)
        var isNew = [Bool](repeating: true, count: list.count)
        for i in r.duplicateIndexes where i < isNew.count { isNew[i] = false }
        return isNew
    }

    func insertLogs(_ list: [StoredLog]) async throws {
        let docs: [Document] = list.map { l in
            var d: Document = ["_id": .string(l.key), "d": .string(l.deviceID), "b": .string(l.bootId), "s": .int64(l.seq),
                               "t": Self.date(l.ts), "r": Self.date(l.receivedAt), "lvl": .string(l.line.level.rawValue),
                               "src": .string(l.line.source), "txt": .string(l.line.text)]
            if let tail = l.line.tail { d["tail"] = .string(tail) }
            return d
        }
        _ = try await logs.insertMany(docs)
    }

    static func sampleDocument(_ s: StoredSample) -> BSON {
        var d: Document = ["t": date(s.ts), "b": .string(s.bootId), "s": .int64(s.seq)]
        for f in MetricsSample.fields { if let v = s.metrics[keyPath: f.path] { d[f.name] = .double(v) } }
        return .document(d)
    }

    func appendMetrics(_ buckets: [MetricBucketAppend]) async throws {
        let writes: [WriteModel] = buckets.map { b in
            // $addToSet: a resent sample is the same subdocument and is not added twice.
            .updateOne(filter: ["_id": .string("\(b.deviceID)|\(b.hourStart)")],
                       update: ["$setOnInsert": ["d": .string(b.deviceID), "h": Self.date(b.hourStart)],
                                "$addToSet": ["samples": ["$each": .array(b.samples.map(Self.sampleDocument))]]],
                       upsert: true)
        }
        _ = try await metrics.bulkWrite(writes, operation: "appendMetrics")
    }

    func addAudience(_ counts: [AudienceCount]) async throws {
        let writes: [WriteModel] = counts.map { c in
            .updateOne(filter: ["_id": .string("\(c.channel)|\(c.minute)")],
                       update: ["$setOnInsert": ["ch": .string(c.channel), "m": Self.date(c.minute)],
                                "$inc": ["viewers": .int(c.viewers), "seconds": .double(c.seconds), "errorBoxes": .int(c.errorBoxes)]],
                       upsert: true)
        }
        _ = try await audience.bulkWrite(writes, operation: "addAudience")
    }
}
