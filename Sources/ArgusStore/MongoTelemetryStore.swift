import ArgusSupport
import Commands
import Foundation
import MongoStore
import STBProtocol
import Telemetry

/// Retention of telemetry, in days, enforced by TTL indexes.
package struct RetentionConfiguration: Sendable {
    package var metricsDays = 30
    package var eventsDays = 90
    package var logsDays = 14
    package var audienceDays = 400

    package init(metricsDays: Int = 30, eventsDays: Int = 90, logsDays: Int = 14, audienceDays: Int = 400) {
        self.metricsDays = metricsDays
        self.eventsDays = eventsDays
        self.logsDays = logsDays
        self.audienceDays = audienceDays
    }
}

/// The telemetry collections, written by ``TelemetryApplier``. See docs/storage.md.
package struct MongoTelemetryStore: TelemetryStore {
    package let events: MongoCollection
    package let logs: MongoCollection
    package let metrics: MongoCollection
    package let audience: MongoCollection
    package let alarms: MongoCollection
    package let jobs: MongoCollection
    package let executions: MongoCollection

    package init(store: MongoStore) {
        jobs = store.collection(Schema.jobs)
        executions = store.collection(Schema.executions)
        alarms = store.collection(Schema.alarms)
        events = store.collection(Schema.events)
        logs = store.collection(Schema.logs)
        metrics = store.collection(Schema.metrics)
        audience = store.collection(Schema.audience)
    }

    /// See ``TelemetryStore/applyCommandStatuses(_:)``. Reports for unknown jobs are dropped.
    /// A report can arrive before its execution document was written (a large job is
    /// materialized in the background): the document is then created here, and the
    /// materializer fills in the job's fields.
    package func applyCommandStatuses(_ list: [StoredCommandStatus]) async throws {
        let refs = Array(Set(list.map(\.status.ref)))
        let known = Set(
            try await jobs.find(["_id": ["$in": .array(refs.map { .string($0) })]], projection: ["_id": 1])
                .compactMap { $0["_id"]?.stringValue })
        let statuses = list.filter { known.contains($0.status.ref) }
            .sorted { ($0.executionID, $0.seq) < ($1.executionID, $1.seq) }
        guard !statuses.isEmpty else { return }
        let ids = Array(Set(statuses.map(\.executionID)))
        var existing = Set<String>()
        for k in stride(from: 0, to: ids.count, by: CommandRepository.inChunk) {
            let part = ids[k..<min(ids.count, k + CommandRepository.inChunk)].map { BSON.string($0) }
            existing.formUnion(try await executions.find(["_id": ["$in": .array(part)]], projection: ["_id": 1]).compactMap { $0["_id"]?.stringValue })
        }
        var firstOf: [String: StoredCommandStatus] = [:]
        for s in statuses where !existing.contains(s.executionID) && firstOf[s.executionID] == nil { firstOf[s.executionID] = s }
        if !firstOf.isEmpty {
            _ = try await executions.insertMany(
                firstOf.values.map { s in
                    let at = Self.date(s.receivedAt)
                    return [
                        "_id": .string(s.executionID), "job": .string(s.status.ref), "device": .string(s.deviceID),
                        "state": .string(ExecutionState.sent.rawValue), "attempts": .int(1), "createdAt": at, "updatedAt": at,
                        "history": [["s": .string(ExecutionState.sent.rawValue), "at": at]],
                    ]
                })
        }
        // One update per execution per round in the common cases: the box's reports since the
        // last round collapse into the final state plus the history entries they add.
        var writes: [WriteModel] = []
        var i = 0
        while i < statuses.count {
            var j = i
            while j < statuses.count && statuses[j].executionID == statuses[i].executionID { j += 1 }
            let group = statuses[i..<j]
            i = j
            guard let first = group.first else { continue }
            let id = first.executionID
            let firstAt = Date(millis: first.receivedAt)
            var entries: [Document] = []
            var progress: String? = nil
            var last = firstAt
            var terminal: (ExecutionState, StoredCommandStatus)? = nil
            for s in group {
                let at = Date(millis: s.receivedAt)
                last = at
                switch s.status.state {
                case .received: break
                case .inProgress:
                    if let p = s.status.progress { progress = p }
                    if entries.isEmpty || s.status.progress != nil {
                        entries.append(ExecutionTransitions.entry(.inProgress, at: at, progress: s.status.progress))
                    }
                case .succeeded, .failed, .rejected:
                    let st: ExecutionState = s.status.state == .succeeded ? .succeeded : s.status.state == .failed ? .failed : .rejected
                    entries.append(ExecutionTransitions.entry(st, at: at, reason: s.status.reason))
                    terminal = (st, s)
                }
                if terminal != nil { break }  // later reports change nothing
            }
            if let (st, s) = terminal {
                writes.append(
                    contentsOf: ExecutionTransitions.report(
                        id,
                        ExecutionChange(
                            to: st, at: last, reason: s.status.reason, progress: progress, result: s.status.result.map(BSON.init(json:)),
                            confirmedAt: firstAt, history: entries)))
            } else if !entries.isEmpty {
                // The first move into IN_PROGRESS carries every entry.
                writes.append(
                    contentsOf: ExecutionTransitions.report(
                        id,
                        ExecutionChange(
                            to: .inProgress, at: last, progress: progress, confirmedAt: firstAt, history: entries,
                            onlyFrom: [.queued, .sent])))
                if let progress {
                    // Already running: record the new stage only.
                    writes.append(
                        ExecutionTransitions.many(
                            ["_id": .string(id), "progress": ["$ne": .string(progress)]],
                            ExecutionChange(to: .inProgress, at: last, progress: progress, history: entries, onlyFrom: [.inProgress])))
                }
            } else {
                // Only `received`: confirmed (SENT; the SENT entry itself comes from the delivering
                // node, or from here if this report is first).
                writes.append(contentsOf: ExecutionTransitions.report(id, ExecutionChange(to: .sent, at: last, confirmedAt: firstAt, history: [])))
            }
        }
        _ = try await executions.bulkWrite(writes, operation: "applyCommandStatuses")
    }

    package static func date(_ ms: Int64) -> BSON { .date(Date(timeIntervalSince1970: Double(ms) / 1000)) }

    package func insertEvents(_ list: [StoredEvent]) async throws -> [Bool] {
        let docs: [Document] = list.map { e in
            var d: Document = [
                "_id": .string(e.key), "d": .string(e.deviceID), "b": .string(e.bootId), "s": .int64(e.seq),
                "t": Self.date(e.ts), "r": Self.date(e.receivedAt), "e": .string(e.event.kind.rawValue),
            ]
            if let ch = e.event.channel { d["ch"] = .string(ch) }
            if let c = e.event.code { d["code"] = .string(c) }
            if let m = e.event.mode { d["mode"] = .string(m.rawValue) }
            if let o = e.clockOffsetMs { d["o"] = .int64(o) }
            return d
        }
        let r = try await events.insertMany(docs)
        var isNew = [Bool](repeating: true, count: list.count)
        for i in r.duplicateIndexes where i < isNew.count { isNew[i] = false }
        return isNew
    }

    package func insertLogs(_ list: [StoredLog]) async throws {
        let docs: [Document] = list.map { l in
            var d: Document = [
                "_id": .string(l.key), "d": .string(l.deviceID), "b": .string(l.bootId), "s": .int64(l.seq),
                "t": Self.date(l.ts), "r": Self.date(l.receivedAt), "lvl": .string(l.line.level.rawValue),
                "src": .string(l.line.source), "txt": .string(l.line.text),
            ]
            if let tail = l.line.tail { d["tail"] = .string(tail) }
            return d
        }
        _ = try await logs.insertMany(docs)
    }

    package static func sampleDocument(_ s: StoredSample) -> BSON {
        var d: Document = ["t": date(s.ts), "b": .string(s.bootId), "s": .int64(s.seq)]
        for f in MetricsSample.fields { if let v = s.metrics[keyPath: f.path] { d[f.name] = .double(v) } }
        return .document(d)
    }

    /// Appends samples with `$push`, guarded by the bucket's highest stored `seq` (`last`):
    /// the common case (new samples, in order) is a cheap append. If a bucket already holds
    /// some of the samples (a resend), the guarded upsert collides on `_id`; those buckets
    /// are then appended one sample at a time, each guarded by `samples.s`, so nothing is
    /// stored twice. (`$addToSet` would also dedupe, but compares every element: quadratic.)
    package func appendMetrics(_ buckets: [MetricBucketAppend]) async throws {
        let writes: [WriteModel] = buckets.map { b in
            .updateOne(
                filter: ["_id": .string(b.key), "last": ["$lt": .int64(b.samples.first?.seq ?? 0)]],
                update: [
                    "$setOnInsert": ["d": .string(b.deviceID), "b": .string(b.bootId), "h": Self.date(b.hourStart)],
                    "$push": ["samples": ["$each": .array(b.samples.map(Self.sampleDocument))]],
                    "$max": ["last": .int64(b.samples.last?.seq ?? 0)],
                ],
                upsert: true)
        }
        let r = try await metrics.bulkWrite(writes, operation: "appendMetrics")
        guard !r.duplicateIndexes.isEmpty else { return }
        var slow: [WriteModel] = []
        for i in r.duplicateIndexes where i < buckets.count {
            let b = buckets[i]
            for s in b.samples {
                slow.append(
                    .updateOne(
                        filter: ["_id": .string(b.key), "samples.s": ["$ne": .int64(s.seq)]],
                        update: ["$push": ["samples": Self.sampleDocument(s)], "$max": ["last": .int64(s.seq)]],
                        upsert: false))
            }
        }
        _ = try await metrics.bulkWrite(slow, operation: "appendMetrics.dedupe")
    }

    /// Raise inserts an active alarm (a unique partial index keeps one active per key, so a
    /// second raise is a counted duplicate); clear closes the active one.
    package func applyAlarms(_ changes: [AlarmChange], now: Int64) async throws {
        let writes: [WriteModel] = changes.map { c in
            switch c {
            case .raise(let key, let rule, let target, let details):
                return .insertOne([
                    "_id": .string(ObjectID.generate().description), "key": .string(key), "rule": .string(rule),
                    "target": .string(target), "state": .string(AlarmStatus.raised.rawValue), "active": true, "raisedAt": Self.date(now),
                    "details": .document(Document(details.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
                ])
            case .clear(let key):
                return .updateMany(
                    filter: ["key": .string(key), "active": true],
                    update: ["$set": ["state": .string(AlarmStatus.cleared.rawValue), "clearedAt": Self.date(now)], "$unset": ["active": ""]], upsert: false)
            }
        }
        // In order: a raise after a clear of the same key must see the clear first.
        for w in writes { _ = try await alarms.bulkWrite([w], operation: "applyAlarms") }
    }

    package func addAudience(_ counts: [AudienceCount]) async throws {
        let writes: [WriteModel] = counts.map { c in
            .updateOne(
                filter: ["_id": .string("\(c.channel)|\(c.minute)")],
                update: [
                    "$setOnInsert": ["ch": .string(c.channel), "m": Self.date(c.minute)],
                    "$inc": ["viewers": .int(c.viewers), "seconds": .double(c.seconds), "errorBoxes": .int(c.errorBoxes)],
                ],
                upsert: true)
        }
        _ = try await audience.bulkWrite(writes, operation: "addAudience")
    }
}
