import ArgusSupport
import Commands
import Foundation
import Logging
import MongoStore
import STBProtocol

/// A command job: one command for a set of boxes. Stored in `jobs`; the frame every box gets
/// is built from it, so it is encoded once per node.
package struct Job: Sendable {
    package var id: String
    package var name: String
    package var params: [(String, JSONValue)]
    /// How the operator chose the boxes (`device`, `devices`, `tag`, `query`, `all`), for display.
    package var target: JSONValue
    /// The boxes. A fleet job (``filter`` set) is stored without them: each node matches its
    /// own sessions against the filter, and the creating node resolves the list from the store
    /// afterwards, for the executions.
    package var devices: [String]
    /// For fleet jobs (`all`, or a `query` on model, firmware and `online: true`).
    package var filter: DeviceFilter? = nil
    package var createdAt: Int64
    package var deadline: Int64
    package var createdBy: String
    package var node: String
    package var state: JobState
    /// True once every execution document exists.
    package var materialized: Bool
    package var rollout: String? = nil

    package var frame: [UInt8] { FrameCodec.command(id: id, name: name, params: params, deadline: deadline) }

    package var document: Document {
        var d: Document = [
            "_id": .string(id), "name": .string(name), "params": BSON(json: .object(params)), "target": BSON(json: target),
            "createdAt": .date(Date(millis: createdAt)), "deadline": .date(Date(millis: deadline)),
            "createdBy": .string(createdBy), "node": .string(node), "state": .string(state.rawValue), "materialized": .bool(materialized),
            "updatedAt": .date(Date(millis: createdAt)), "v": .int(1),
        ]
        if let rollout { d["rollout"] = .string(rollout) }
        if let filter {
            d["spec"] = .document(filter.spec)
            if !devices.isEmpty { d["count"] = .int(devices.count) }
        } else {
            d["devices"] = .array(devices.map { .string($0) })
            d["count"] = .int(devices.count)
        }
        return d
    }

    package init(
        id: String, name: String, params: [(String, JSONValue)], target: JSONValue, devices: [String], filter: DeviceFilter? = nil,
        createdAt: Int64, deadline: Int64, createdBy: String, node: String, state: JobState = .active, materialized: Bool = false,
        rollout: String? = nil
    ) {
        self.id = id; self.name = name; self.params = params; self.target = target; self.devices = devices; self.filter = filter
        self.createdAt = createdAt; self.deadline = deadline; self.createdBy = createdBy; self.node = node
        self.state = state; self.materialized = materialized; self.rollout = rollout
    }

    /// The job a ``JobPlan`` describes: `devices` for a list plan (a fleet plan's are
    /// resolved when it is created), created by `createdBy` on `node`.
    package init(_ plan: JobPlan, devices: [String], createdBy: String, node: String) {
        let filter: DeviceFilter? = if case .fleet(let q) = plan.scope { DeviceFilter(q) } else { nil }
        self.init(
            id: Job.newID(now: plan.createdAt), name: plan.command.name.rawValue, params: plan.command.params, target: plan.targetJSON,
            devices: devices, filter: filter, createdAt: plan.createdAt, deadline: plan.deadline, createdBy: createdBy, node: node)
    }

    package static func newID(now: Int64) -> String {
        // Time-ordered: 11 hex digits of ms, then 6 random bytes.
        let t = String(now, radix: 16)
        return "c" + String(repeating: "0", count: max(0, 11 - t.count)) + t + Secrets.randomHex(bytes: 6)
    }
}

extension DeviceFilter {
    /// A fleet job's filter as stored in its `spec` (no tag: fleet jobs have none).
    package var spec: Document {
        var f = Document()
        if let model { f["model"] = .string(model) }
        if let firmware { f["firmware"] = .string(firmware) }
        if let online { f["online"] = .bool(online) }
        return f
    }

    /// A fleet job's filter as read from its stored `spec`.
    package init(_ spec: JobSpec) { self.init(online: spec.online, model: spec.model, firmware: spec.firmware) }

    /// The store filter of a planned target's query.
    package init(_ q: TargetQuery) { self.init(online: q.online, model: q.model, firmware: q.firmware, tag: q.tag) }
}

/// The `jobs` and `executions` collections. An execution's `_id` is `job|device`; every state
/// change is a guarded update (never out of a terminal state) that appends to `history`.
package struct CommandRepository: Sendable {
    package let jobs: MongoCollection
    package let executions: MongoCollection
    /// Stored jobs that do not decode (shared: ``Job/init(_:)`` reports there too).
    package static let jobDecodeFailures = DecodeFailures(collection: Schema.jobs, logger: Logger(label: "argus.store"))
    package let executionDecodeFailures: DecodeFailures

    package init(store: MongoStore, logger: Logger = Logger(label: "argus.store")) {
        // Job inserts are on every command's critical path: the priority lane.
        jobs = store.collection(Schema.jobs, priority: true)
        executions = store.collection(Schema.executions)
        executionDecodeFailures = DecodeFailures(collection: Schema.executions, logger: logger)
    }

    package static let terminal: [BSON] = ExecutionState.allCases.filter(\.isTerminal).map { .string($0.rawValue) }
    package static let open: [BSON] = ExecutionState.allCases.filter { !$0.isTerminal }.map { .string($0.rawValue) }

    package static func executionID(_ job: String, _ device: String) -> String { "\(job)|\(device)" }

    /// Values per `$in`: small lists keep every lookup cheap (SecantusDB's `$in` cost grows
    /// with the square of the list: 1,000 ids take a second, 4,000 ten).
    package static let inChunk = 200

    package func insert(_ job: Job) async throws { try await jobs.insertOne(job.document) }

    package func executionDocument(_ job: Job, device: String) -> Document {
        [
            "_id": .string(Self.executionID(job.id, device)), "job": .string(job.id), "device": .string(device),
            "name": .string(job.name), "params": BSON(json: .object(job.params)), "deadline": .date(Date(millis: job.deadline)),
            "state": .string(ExecutionState.queued.rawValue), "attempts": .int(0),
            "createdAt": .date(Date(millis: job.createdAt)), "updatedAt": .date(Date(millis: job.createdAt)),
            "history": [["s": .string(ExecutionState.queued.rawValue), "at": .date(Date(millis: job.createdAt))]],
        ]
    }

    /// Creates the QUEUED executions of `job` in chunks, calling `progress` after each (then
    /// call ``markMaterialized(_:)``).
    /// Executions that already exist (a box reported before its document was written) get the
    /// job's fields filled in. Idempotent, so a crashed run can be repeated by any node.
    package func materialize(_ job: Job, chunk: Int = 1000, progress: (Int) async -> Void = { _ in }) async throws {
        var done = 0
        for start in stride(from: 0, to: job.devices.count, by: chunk) {
            let part = Array(job.devices[start..<min(job.devices.count, start + chunk)])
            let r = try await executions.insertMany(part.map { executionDocument(job, device: $0) })
            let dupes: [BSON] = r.duplicateIndexes.filter { $0 < part.count }.map { .string(Self.executionID(job.id, part[$0])) }
            for k in stride(from: 0, to: dupes.count, by: Self.inChunk) {
                let ids = Array(dupes[k..<min(dupes.count, k + Self.inChunk)])
                _ = try await executions.updateMany(
                    ["_id": ["$in": .array(ids)], "name": ["$exists": false]],
                    [
                        "$set": [
                            "name": .string(job.name), "params": BSON(json: .object(job.params)),
                            "deadline": .date(Date(millis: job.deadline)), "createdAt": .date(Date(millis: job.createdAt)),
                        ]
                    ])
            }
            done += part.count
            await progress(done)
        }
    }

    /// Marks every execution of the job as stored (other nodes stop checking it on hello).
    package func markMaterialized(_ job: String) async throws {
        _ = try await jobs.updateOne(
            ["_id": .string(job)],
            [
                "$set": ["materialized": true, "updatedAt": .date(Date())], "$inc": ["v": 1],
            ])
    }

    /// Open executions of a box, oldest first (bounded).
    package func pending(device: String, limit: Int = 100) async throws -> [Document] {
        try await executions.find(["device": .string(device), "state": ["$in": .array(Self.open)]], sort: ["_id": 1], limit: limit)
    }

    package func job(_ id: String, withDevices: Bool = false) async throws -> Document? {
        try await jobs.findOne(["_id": .string(id)], projection: withDevices ? nil : ["devices": 0])
    }

    package func listJobs(before: String?, limit: Int) async throws -> [Document] {
        var q = Document()
        if let before { q["_id"] = ["$lt": .string(before)] }
        return try await jobs.find(q, sort: ["_id": -1], limit: limit, projection: ["devices": 0])
    }

    /// A stored job, decoded; nil only when there is none. One that does not decode throws
    /// ``BSONDecodingError`` (counted and logged).
    package func jobRecord(_ id: String, withDevices: Bool = false) async throws -> JobRecord? {
        try await job(id, withDevices: withDevices).map { d throws(BSONDecodingError) in try Self.jobDecodeFailures.decode(d, as: JobRecord.self) }
    }

    /// A page of jobs, newest first: those that decode (the others are counted, logged and
    /// left out), and the `_id` of the page's last stored job, for the next page, whenever
    /// the page is full.
    package func jobRecords(before: String?, limit: Int) async throws -> (items: [JobRecord], last: String?) {
        let docs = try await listJobs(before: before, limit: limit)
        let last = docs.count == limit ? docs.last?["_id"]?.stringValue : nil
        return (Self.jobDecodeFailures.decodeEach(docs, as: JobRecord.self), last)
    }

    /// One row of a count by state (`{_id: state, n}`).
    private struct StateCount: Decodable {
        var state: String?
        var n: Int
        enum CodingKeys: String, CodingKey { case state = "_id", n }
    }

    /// Executions per state (as stored: a state this hub does not know is counted under its text).
    package func counts(job: String) async throws -> [String: Int] {
        var out: [String: Int] = [:]
        let rows = try await executions.aggregate([
            ["$match": ["job": .string(job)]], ["$group": ["_id": "$state", "n": ["$sum": 1]]],
        ])
        for row in executionDecodeFailures.decodeEach(rows, as: StateCount.self) { if let s = row.state { out[s] = row.n } }
        return out
    }

    package func executionsPage(job: String, state: String?, after: String?, limit: Int) async throws -> [Document] {
        var q: Document = ["job": .string(job)]
        if let state { q["state"] = .string(state) }
        if let after { q["_id"] = ["$gt": .string(Self.executionID(job, after))] }
        return try await executions.find(q, sort: ["_id": 1], limit: limit, projection: ["result": 0, "params": 0])
    }

    /// A box's executions, newest job first (`_id` is `job|device` and job ids are
    /// time-ordered), without `params` and `result`; those that do not decode are left out.
    package func deviceExecutions(_ device: String, limit: Int) async throws -> [ExecutionRecord] {
        let docs = try await executions.find(["device": .string(device)], sort: ["_id": -1], limit: limit, projection: ["result": 0, "params": 0])
        return executionDecodeFailures.decodeEach(docs, as: ExecutionRecord.self)
    }

    package func execution(job: String, device: String) async throws -> Document? {
        try await executions.findOne(["_id": .string(Self.executionID(job, device))])
    }

    /// A stored execution, decoded; nil only when there is none. One that does not decode
    /// throws ``BSONDecodingError`` (counted and logged).
    package func executionRecord(job: String, device: String) async throws -> ExecutionRecord? {
        try await execution(job: job, device: device).map { d throws(BSONDecodingError) in
            try executionDecodeFailures.decode(d, as: ExecutionRecord.self)
        }
    }

    /// A page of executions (without `params` and `result`), by box: those that decode (the
    /// others are counted, logged and left out), and the box of the page's last stored
    /// execution, for the next page, whenever the page is full.
    package func executionRecords(
        job: String, state: String?, after: String?, limit: Int
    ) async throws -> (
        items: [ExecutionRecord], last: String?
    ) {
        let docs = try await executionsPage(job: job, state: state, after: after, limit: limit)
        let last = docs.count == limit ? docs.last?["device"]?.stringValue : nil
        return (executionDecodeFailures.decodeEach(docs, as: ExecutionRecord.self), last)
    }

    /// Cancels a job: it stops being delivered, and every open execution becomes CANCELED.
    /// Idempotent. Returns whether the job exists, whether this call canceled it, and how many
    /// executions it moved.
    package func cancel(job: String, by: String, now: Date) async throws -> (exists: Bool, changed: Bool, executions: Int) {
        let r = try await jobs.updateOne(
            ["_id": .string(job), "state": .string(JobState.active.rawValue)],
            [
                "$set": ["state": .string(JobState.canceled.rawValue), "canceledAt": .date(now), "canceledBy": .string(by), "updatedAt": .date(now)],
                "$inc": ["v": 1],
            ])
        if r.matchedCount == 0 {
            guard try await jobs.count(["_id": .string(job)]) > 0 else { return (false, false, 0) }
        }
        let moved = try await ExecutionTransitions.apply(
            ["job": .string(job)], ExecutionChange(to: .canceled, at: now, reason: "canceled by \(by)"), on: executions)
        return (true, r.modifiedCount == 1, moved)
    }

    /// Jobs changed since `since` (polling fallback for change streams).
    package func jobsChanged(since: Date) async throws -> [Document] {
        try await jobs.find(["updatedAt": ["$gte": .date(since)]], sort: ["updatedAt": 1], limit: 1000)
    }
}
