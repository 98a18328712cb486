import Commands
import Foundation
import MongoStore

/// One change of an execution's state in the store: the target state and what comes with it.
package struct ExecutionChange: Sendable {
    package var to: ExecutionState
    package var at: Date
    package var reason: String?
    /// The box's latest progress stage.
    package var progress: String?
    /// The box's result (final reports).
    package var result: BSON?
    /// The box confirmed it has the command (any report): sets `confirmed` and keeps the
    /// earliest `confirmedAt`.
    package var confirmedAt: Date?
    /// The node that delivered it (SENT).
    package var node: String?
    /// A delivery: counts one more attempt.
    package var countsAttempt = false
    /// History entries to append. nil: one entry for `to` at `at` (with the reason); empty:
    /// none (a `received` that only confirms).
    package var history: [Document]?
    /// Narrows the guard to some of the states the table allows (e.g. only a first move into
    /// IN_PROGRESS, so that a repeated report adds no entry). Must be a subset.
    package var onlyFrom: [ExecutionState]?
    /// Only executions the box has not confirmed (a requeue or a redelivery).
    package var unconfirmedOnly = false

    package init(
        to: ExecutionState, at: Date, reason: String? = nil, progress: String? = nil, result: BSON? = nil,
        confirmedAt: Date? = nil, node: String? = nil, countsAttempt: Bool = false, history: [Document]? = nil,
        onlyFrom: [ExecutionState]? = nil, unconfirmedOnly: Bool = false
    ) {
        self.to = to
        self.at = at
        self.reason = reason
        self.progress = progress
        self.result = result
        self.confirmedAt = confirmedAt
        self.node = node
        self.countsAttempt = countsAttempt
        self.history = history
        self.onlyFrom = onlyFrom
        self.unconfirmedOnly = unconfirmedOnly
    }
}

/// The one path by which executions change state in the store. Every write is guarded by the
/// states ``ExecutionStateMachine/sources(of:)`` allows for its target, so no write, on any
/// node, in any order, moves an execution out of a terminal state. Callers choose which
/// executions (`selection`: by id, by job, by deadline…) and what changes; the guard is not
/// theirs to write.
package enum ExecutionTransitions {
    /// The stored history entry: `s` (the state) and `at`, plus `reason` / `progress`.
    package static func entry(_ state: ExecutionState, at: Date, reason: String? = nil, progress: String? = nil) -> Document {
        var e: Document = ["s": .string(state.rawValue), "at": .date(at)]
        if let reason { e["reason"] = .string(reason) }
        if let progress { e["progress"] = .string(progress) }
        return e
    }

    /// `selection` plus the state guard.
    package static func filter(_ selection: Document, _ c: ExecutionChange) -> Document {
        let allowed = ExecutionStateMachine.sources(of: c.to)
        var from = allowed
        if let only = c.onlyFrom {
            assert(Set(only).isSubset(of: Set(allowed)), "onlyFrom \(only) is not within \(allowed)")
            from = only.filter(allowed.contains)
        }
        var f = selection
        f["state"] = from.count == 1 ? .string(from[0].rawValue) : ["$in": .array(from.map { .string($0.rawValue) })]
        if c.unconfirmedOnly { f["confirmed"] = ["$ne": true] }
        return f
    }

    package static func update(_ c: ExecutionChange) -> Document {
        let t = BSON.date(c.at)
        var set: Document = ["state": .string(c.to.rawValue), "updatedAt": t]
        if c.to.isTerminal { set["finishedAt"] = t }
        if let r = c.reason { set["reason"] = .string(r) }
        if let p = c.progress { set["progress"] = .string(p) }
        if let r = c.result { set["result"] = r }
        if let n = c.node { set["node"] = .string(n) }
        if c.confirmedAt != nil { set["confirmed"] = true }
        var u: Document = ["$set": .document(set)]
        if let confirmedAt = c.confirmedAt { u["$min"] = ["confirmedAt": .date(confirmedAt)] }
        if c.countsAttempt { u["$inc"] = ["attempts": 1] }
        let entries = c.history ?? [entry(c.to, at: c.at, reason: c.reason)]
        if entries.count == 1 {
            u["$push"] = ["history": .document(entries[0])]
        } else if !entries.isEmpty {
            u["$push"] = ["history": ["$each": .array(entries.map { .document($0) })]]
        }
        return u
    }

    /// The change for one execution.
    package static func one(_ id: String, _ c: ExecutionChange) -> WriteModel {
        .updateOne(filter: filter(["_id": .string(id)], c), update: update(c), upsert: false)
    }

    /// A box's report for one execution. A report proves the box has the command, but it may
    /// reach the store before the delivering node's batched SENT write; then the execution is
    /// still QUEUED there, and the SENT entry is written with the report, at its receive time
    /// (the later SENT write finds it confirmed and adds nothing). Two writes with disjoint
    /// guards (from QUEUED, from the rest), so their order in an unordered bulk write does not
    /// matter.
    package static func report(_ id: String, _ c: ExecutionChange) -> [WriteModel] {
        let allowed = c.onlyFrom ?? ExecutionStateMachine.sources(of: c.to)
        guard allowed.contains(.queued) else { return [one(id, c)] }
        var fromQueued = c
        fromQueued.onlyFrom = [.queued]
        fromQueued.history = [entry(.sent, at: c.confirmedAt ?? c.at)] + (c.history ?? [entry(c.to, at: c.at, reason: c.reason)])
        var rest = c
        rest.onlyFrom = allowed.filter { $0 != .queued }
        return [one(id, fromQueued)] + (rest.onlyFrom?.isEmpty == false ? [one(id, rest)] : [])
    }

    /// The change for every execution `selection` picks.
    package static func many(_ selection: Document, _ c: ExecutionChange) -> WriteModel {
        .updateMany(filter: filter(selection, c), update: update(c), upsert: false)
    }

    /// Runs one change on a collection (an `updateMany`); returns how many executions moved.
    package static func apply(_ selection: Document, _ c: ExecutionChange, on executions: MongoCollection) async throws -> Int {
        try await executions.updateMany(filter(selection, c), update(c)).modifiedCount
    }
}
