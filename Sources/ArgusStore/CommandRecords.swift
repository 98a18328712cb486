import Commands
import Foundation
import MongoStore
import STBProtocol

/// A job's state: delivered while `active`; `canceled` stops it (see docs/storage.md).
package enum JobState: String, Codable, Sendable, CaseIterable {
    case active
    case canceled
}

/// A fleet job's device filter as stored in its `spec`.
package struct JobSpec: Codable, Sendable, Equatable {
    package var model: String?
    package var firmware: String?
    package var online: Bool?

    package init(model: String? = nil, firmware: String? = nil, online: Bool? = nil) {
        self.model = model
        self.firmware = firmware
        self.online = online
    }
}

/// A document of `jobs`, as stored (docs/storage.md). ``Job`` is what the command runtime
/// works with; this is every field a stored job may have, decoded with ``BSONDecoder``.
package struct JobRecord: Codable, Sendable, Equatable {
    package var id: String
    package var name: String
    package var params: Document
    /// The target as the operator gave it.
    package var target: BSON?
    /// List jobs only; left out by the reads that project it away.
    package var devices: [String]?
    /// Fleet jobs only.
    package var spec: JobSpec?
    package var count: Int?
    package var createdAt: Date
    package var deadline: Date
    package var createdBy: String
    package var node: String
    package var state: JobState
    package var canceledAt: Date?
    package var canceledBy: String?
    package var materialized: Bool
    package var materializedCount: Int?
    package var updatedAt: Date?
    /// The version, for change handling.
    package var v: Int?
    package var rollout: String?
    /// The sweeper's lease on a job left incomplete.
    package var lease: Date?
    package var leaseNode: String?

    package enum CodingKeys: String, CodingKey {
        case id = "_id", name, params, target, devices, spec, count, createdAt, deadline, createdBy, node, state, canceledAt, canceledBy
        case materialized, materializedCount, updatedAt, v, rollout, lease, leaseNode
    }

    package init(
        id: String, name: String, params: Document, target: BSON?, devices: [String]? = nil, spec: JobSpec? = nil, count: Int? = nil,
        createdAt: Date, deadline: Date, createdBy: String, node: String, state: JobState, canceledAt: Date? = nil,
        canceledBy: String? = nil, materialized: Bool, materializedCount: Int? = nil, updatedAt: Date? = nil, v: Int? = nil,
        rollout: String? = nil, lease: Date? = nil, leaseNode: String? = nil
    ) {
        self.id = id; self.name = name; self.params = params; self.target = target; self.devices = devices; self.spec = spec
        self.count = count; self.createdAt = createdAt; self.deadline = deadline; self.createdBy = createdBy; self.node = node
        self.state = state; self.canceledAt = canceledAt; self.canceledBy = canceledBy; self.materialized = materialized
        self.materializedCount = materializedCount; self.updatedAt = updatedAt; self.v = v; self.rollout = rollout
        self.lease = lease; self.leaseNode = leaseNode
    }
}

/// One entry of an execution's `history`: stored as `{s, at, progress?, reason?}`.
package struct ExecutionHistoryEntry: Codable, Sendable, Equatable {
    package var state: ExecutionState
    package var at: Date
    package var progress: String?
    package var reason: String?

    package enum CodingKeys: String, CodingKey {
        case state = "s", at, progress, reason
    }

    package init(state: ExecutionState, at: Date, progress: String? = nil, reason: String? = nil) {
        self.state = state
        self.at = at
        self.progress = progress
        self.reason = reason
    }
}

/// A document of `executions` (`_id` is `job|device`). A box may report before the hub has
/// written the execution, so the job's fields (`name`, `params`, `deadline`, …) can be absent
/// for a moment; pages leave out `params` and `result`.
package struct ExecutionRecord: Codable, Sendable, Equatable {
    package var id: String
    package var job: String
    package var device: String
    package var name: String?
    package var params: Document?
    package var deadline: Date?
    package var state: ExecutionState
    package var attempts: Int?
    package var confirmed: Bool?
    package var confirmedAt: Date?
    package var node: String?
    package var progress: String?
    package var reason: String?
    /// What the box reported with its final state.
    package var result: BSON?
    package var history: [ExecutionHistoryEntry]?
    package var createdAt: Date?
    package var updatedAt: Date?
    package var finishedAt: Date?

    package enum CodingKeys: String, CodingKey {
        case id = "_id", job, device, name, params, deadline, state, attempts, confirmed, confirmedAt, node, progress, reason, result
        case history, createdAt, updatedAt, finishedAt
    }

    package init(
        id: String, job: String, device: String, name: String? = nil, params: Document? = nil, deadline: Date? = nil,
        state: ExecutionState, attempts: Int? = nil, confirmed: Bool? = nil, confirmedAt: Date? = nil, node: String? = nil,
        progress: String? = nil, reason: String? = nil, result: BSON? = nil, history: [ExecutionHistoryEntry]? = nil,
        createdAt: Date? = nil, updatedAt: Date? = nil, finishedAt: Date? = nil
    ) {
        self.id = id; self.job = job; self.device = device; self.name = name; self.params = params; self.deadline = deadline
        self.state = state; self.attempts = attempts; self.confirmed = confirmed; self.confirmedAt = confirmedAt; self.node = node
        self.progress = progress; self.reason = reason; self.result = result; self.history = history; self.createdAt = createdAt
        self.updatedAt = updatedAt; self.finishedAt = finishedAt
    }
}

extension Job {
    /// The record ``document`` stores (as a new job: version 1, `updatedAt` = `createdAt`).
    package var record: JobRecord {
        let paramsDoc: Document = if case .document(let d) = BSON(json: .object(params)) { d } else { [:] }
        let listed = filter == nil
        return JobRecord(
            id: id, name: name, params: paramsDoc, target: target == .null ? nil : BSON(json: target), devices: listed ? devices : nil,
            spec: filter.map { JobSpec(model: $0.model, firmware: $0.firmware, online: $0.online) },
            count: listed || !devices.isEmpty ? devices.count : nil, createdAt: Date(millis: createdAt), deadline: Date(millis: deadline),
            createdBy: createdBy, node: node, state: state, materialized: materialized, updatedAt: Date(millis: createdAt), v: 1,
            rollout: rollout)
    }

    /// The job a stored record describes.
    package init(_ r: JobRecord) {
        let params: [(String, JSONValue)] = if case .object(let m) = BSON.document(r.params).json { m } else { [] }
        self.init(
            id: r.id, name: r.name, params: params, target: r.target?.json ?? .null, devices: r.devices ?? [],
            filter: r.spec.map(DeviceFilter.init),
            createdAt: r.createdAt.millis, deadline: r.deadline.millis, createdBy: r.createdBy, node: r.node, state: r.state,
            materialized: r.materialized, rollout: r.rollout)
    }

    /// Decodes a stored job; a document of the wrong shape throws ``BSONDecodingError`` naming
    /// `jobs`, its `_id` and the field.
    package init(decoding d: Document) throws(BSONDecodingError) {
        self.init(try BSONDecoder().decode(JobRecord.self, from: d, collection: Schema.jobs))
    }

    /// Decodes a stored job, nil if it does not decode (then counted and logged in
    /// `argus_store_decode_errors_total{collection="jobs"}`). For callers that skip such a
    /// job; ``init(decoding:)`` gives the error.
    package init?(_ d: Document) {
        do { try self.init(decoding: d) } catch {
            CommandRepository.jobDecodeFailures.report(error)
            return nil
        }
    }
}
