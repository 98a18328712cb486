import ArgusStore
import ArgusSupport
import Commands
import Foundation
import HubGateway
import Logging
import MongoStore
import STBProtocol
import ServiceLifecycle

/// One batch of boxes a rollout started: a `firmware_update` job.
package struct RolloutBatch: Codable, Sendable, Equatable {
    package var job: String
    package var wave: Int
    package var devices: [String]
    /// The job document exists (a batch is recorded before its job is created, so a crash in
    /// between is repaired on the next tick by creating it with the same id).
    package var created: Bool
    package var succeeded = 0
    package var failed = 0
}

/// A firmware rollout as stored in `rollouts`: the pure ``RolloutMachine`` plus the boxes.
package struct Rollout: Codable, Sendable {
    package var id: String
    package var firmware: String
    package var target: String
    package var utcOffsetMinutes: Int
    package var createdBy: String
    package var machine: RolloutMachine
    package var remaining: [String]
    package var batches: [RolloutBatch]
    package var lastHealth: String?
    package var lastHealthAt: Int64?
    package var canceledJobs: Bool = false

    package init(
        id: String, firmware: String, target: String, utcOffsetMinutes: Int, createdBy: String, machine: RolloutMachine, remaining: [String],
        batches: [RolloutBatch], lastHealth: String? = nil, lastHealthAt: Int64? = nil, canceledJobs: Bool = false
    ) {
        self.id = id
        self.firmware = firmware
        self.target = target
        self.utcOffsetMinutes = utcOffsetMinutes
        self.createdBy = createdBy
        self.machine = machine
        self.remaining = remaining
        self.batches = batches
        self.lastHealth = lastHealth
        self.lastHealthAt = lastHealthAt
        self.canceledJobs = canceledJobs
    }
}

/// A document of `rollouts`: the rollout as a sub-document (`doc`, written by `BSONEncoder`),
/// and the fields that queries, leases and the compare-and-set use. See docs/storage.md.
package struct RolloutRecord: Codable, Sendable {
    package var id: String
    package var doc: Rollout
    /// `doc.machine.state.name`, for the `{state}` index.
    package var state: String
    package var firmware: String
    /// The version the compare-and-set guards on.
    package var v: Int
    package var createdAt: Date
    package var updatedAt: Date
    /// The driving node's lease (written by `driveAll` with a plain update).
    package var lease: Date?
    package var leaseNode: String?

    package enum CodingKeys: String, CodingKey { case id = "_id", doc, state, firmware, v, createdAt, updatedAt, lease, leaseNode }
}

/// Drives rollouts: one node at a time holds a rollout's lease and, every tick, counts its
/// finished installs, runs the health gate, and starts the next boxes the machine allows
/// (wave cap, rate, maintenance window). Operator actions go through the same
/// compare-and-set on the document's version, so they never lose an update.
package final class RolloutService: Service, Sendable {
    package let collection: MongoCollection
    package let executions: MongoCollection
    package let events: MongoCollection
    package let commands: CommandService
    package let firmware: FirmwareRepository
    package let node: String
    package let tick: Duration
    package let healthEvery: Int64
    package let logger: Logger
    package let gate: ReadinessGate?
    package let decodeFailures: DecodeFailures

    package init(
        store: MongoStore, commands: CommandService, node: String, tick: Duration = .seconds(1), healthEvery: Duration = .seconds(30),
        gate: ReadinessGate? = nil, logger: Logger
    ) {
        collection = store.collection(Schema.rollouts)
        executions = store.collection(Schema.executions)
        events = store.collection(Schema.events)
        firmware = FirmwareRepository(store: store)
        self.commands = commands
        self.node = node
        self.tick = tick
        self.healthEvery = Int64(healthEvery.components.seconds * 1000)
        self.gate = gate
        self.logger = logger
        decodeFailures = DecodeFailures(collection: Schema.rollouts, logger: logger)
    }

    package enum Conflict: Error { case version }

    // MARK: - Storage

    /// The rollout and its version; nil only when there is no such rollout. A stored rollout
    /// that does not decode throws ``BSONDecodingError`` (counted and logged).
    package func load(_ id: String) async throws -> (Rollout, Int)? {
        guard let d = try await collection.findOne(["_id": .string(id)]) else { return nil }
        let record = try decode(d)
        return (record.doc, record.v)
    }

    /// The newest rollouts, newest first. Rollouts that do not decode are skipped (counted
    /// and logged), so one corrupt document never hides the others.
    package func list(limit: Int) async throws -> [Rollout] {
        try await collection.find([:], sort: ["_id": -1], limit: limit).compactMap { d in try? decode(d).doc }
    }

    private func decode(_ d: Document) throws(BSONDecodingError) -> RolloutRecord {
        do { return try collection.decode(d, as: RolloutRecord.self) } catch {
            decodeFailures.report(error)
            throw error
        }
    }

    private func fields(_ r: Rollout, now: Int64) throws -> Document {
        [
            "doc": try BSONEncoder().encodeValue(r), "state": .string(r.machine.state.name), "firmware": .string(r.firmware),
            "updatedAt": .date(Date(millis: now)),
        ]
    }

    package func insert(_ r: Rollout, now: Int64) async throws {
        let at = Date(millis: now)
        let record = RolloutRecord(id: r.id, doc: r, state: r.machine.state.name, firmware: r.firmware, v: 1, createdAt: at, updatedAt: at)
        try await collection.insertOne(try BSONEncoder().encode(record))
    }

    /// Saves if nobody else saved since `v`.
    package func save(_ r: Rollout, v: Int, now: Int64) async throws {
        let res = try await collection.updateOne(["_id": .string(r.id), "v": .int(v)], ["$set": .document(try fields(r, now: now)), "$inc": ["v": 1]])
        if res.matchedCount == 0 { throw Conflict.version }
    }

    /// Load, change, save, retried on a concurrent change.
    package func update(_ id: String, _ change: (inout Rollout, Int64) throws -> Void) async throws -> Rollout? {
        for _ in 0..<10 {
            guard let (r0, v) = try await load(id) else { return nil }
            var r = r0
            let now = Date().millis
            try change(&r, now)
            do { try await save(r, v: v, now: now); return r } catch Conflict.version { continue }
        }
        throw MongoStoreError(kind: .other, operation: "update", collection: Schema.rollouts, message: "rollout kept changing; try again")
    }

    // MARK: - Operator actions

    package func pause(_ id: String, reason: String) async throws -> Rollout? {
        try await update(id) { r, now in try r.machine.pause(now: now, reason: reason) }
    }
    package func resume(_ id: String) async throws -> Rollout? { try await update(id) { r, now in try r.machine.resume(now: now) } }
    package func abort(_ id: String, reason: String) async throws -> Rollout? {
        let r = try await update(id) { r, now in try r.machine.abort(now: now, reason: reason) }
        if let r { try await cancelBatches(r) }
        return r
    }

    private func cancelBatches(_ r: Rollout) async throws {
        for b in r.batches where b.created { _ = try await commands.cancel(job: b.job, by: "rollout \(r.id)") }
        _ = try await update(r.id) { r, _ in r.canceledJobs = true }
    }

    // MARK: - Driving

    package func run() async throws {
        if let gate {
            guard await cancelWhenGracefulShutdown({ await gate.wait() }) == true else { return }
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.tick)
                do { try await self.driveAll() } catch {
                    self.logger.debug("rollout tick failed", metadata: [LogKey.error: .string("\(error)")])
                }
            }
        }
    }

    /// One tick over every active rollout this node can lease.
    package func driveAll() async throws {
        let now = Date()
        let active = try await collection.find(["state": ["$in": ["running", "paused", "aborted"]]], limit: 100, projection: ["_id": 1, "state": 1])
        for d in active {
            guard let id = d["_id"]?.stringValue else { continue }
            let leased = try await collection.findOneAndUpdate(
                ["_id": .string(id), "$or": [["lease": ["$exists": false]], ["lease": ["$lt": .date(now)]], ["leaseNode": .string(node)]]],
                ["$set": ["lease": .date(now.addingTimeInterval(10)), "leaseNode": .string(node)]])
            guard leased != nil else { continue }
            // A rollout that does not decode (reported by `load`) must not hold up the others.
            do { try await drive(id) } catch Conflict.version { continue } catch is BSONDecodingError { continue }
        }
    }

    package func drive(_ id: String) async throws {
        guard let (loaded, v) = try await load(id) else { return }
        var r = loaded
        let now = Date().millis
        // Batches recorded but not created (a crash in between): create them now.
        for i in r.batches.indices where !r.batches[i].created {
            try await createJob(r, r.batches[i], now: now)
            r.batches[i].created = true
        }
        // Finished installs since the last tick.
        for i in r.batches.indices {
            var counts: [String: Int] = [:]
            for d in try await executions.aggregate([["$match": ["job": .string(r.batches[i].job)]], ["$group": ["_id": "$state", "n": ["$sum": 1]]]]) {
                if let s = d["_id"]?.stringValue { counts[s] = d["n"]?.intValue ?? 0 }
            }
            let ok = counts["SUCCEEDED"] ?? 0
            let bad = ["FAILED", "TIMED_OUT", "REJECTED", "EXPIRED"].reduce(0) { $0 + (counts[$1] ?? 0) }
            for _ in 0..<max(0, ok - r.batches[i].succeeded) { r.machine.finished(success: true, now: now, wave: r.batches[i].wave) }
            for _ in 0..<max(0, bad - r.batches[i].failed) { r.machine.finished(success: false, now: now, wave: r.batches[i].wave) }
            r.batches[i].succeeded = max(ok, r.batches[i].succeeded)
            r.batches[i].failed = max(bad, r.batches[i].failed)
        }
        // Health gate.
        if r.machine.policy.health != nil, r.machine.state == .running, now - (r.lastHealthAt ?? 0) >= healthEvery {
            let (updated, control) = try await cohorts(r, now: now)
            if let verdict = r.machine.evaluateHealth(updated: updated, control: control, now: now) {
                r.lastHealth = "\(verdict)"
                r.lastHealthAt = now
            }
        }
        // Start the next boxes.
        var fresh: RolloutBatch? = nil
        if r.machine.state == .running, !r.remaining.isEmpty {
            let budget = r.machine.next(now: now, eligible: r.remaining.count)
            if budget > 0 {
                let picked = try await eligible(r, upTo: budget, now: now)
                let n = r.machine.next(now: now, eligible: picked.count)
                if n > 0 {
                    let chosen = Array(picked.prefix(n))
                    let wave = r.machine.started(n, now: now)
                    let set = Set(chosen)
                    r.remaining.removeAll { set.contains($0) }
                    let batch = RolloutBatch(job: Job.newID(now: now), wave: wave, devices: chosen, created: false)
                    r.batches.append(batch)
                    fresh = batch
                }
            }
        }
        let abortedNow = r.machine.state.name == "aborted" && !r.canceledJobs
        // Record first, then create the job: a crash in between is repaired next tick.
        try await save(r, v: v, now: now)
        if let fresh {
            try await createJob(r, fresh, now: now)
            _ = try await update(id) { r, _ in
                if let i = r.batches.firstIndex(where: { $0.job == fresh.job }) { r.batches[i].created = true }
            }
        }
        if abortedNow { try await cancelBatches(r) }
    }

    private func createJob(_ r: Rollout, _ b: RolloutBatch, now: Int64) async throws {
        // The same catalogue-to-command rule as an operator's firmware update (JobPlanner).
        guard let fw = try await firmware.get(r.firmware), let command = try? fw.image.updateCommand() else {
            _ = try await update(r.id) { r, now in try? r.machine.pause(now: now, reason: "firmware \(r.firmware) is no longer available") }
            return
        }
        let job = Job(
            id: b.job, name: command.name.rawValue, params: command.params, target: .object([("rollout", .string(r.id))]),
            devices: b.devices, createdAt: now, deadline: now + 86_400_000, createdBy: r.createdBy, node: node, rollout: r.id)
        do { try await commands.create(job) } catch let e as MongoStoreError where e.kind == .duplicateKey {}
    }

    /// Up to `n` of the remaining boxes the maintenance window allows now.
    private func eligible(_ r: Rollout, upTo n: Int, now: Int64) async throws -> [String] {
        guard let window = r.machine.policy.window else { return Array(r.remaining.prefix(n)) }
        guard window.contains(localMinute: MaintenanceWindow.localMinute(nowMillis: now, utcOffsetMinutes: r.utcOffsetMinutes)) else { return [] }
        let candidates = Array(r.remaining.prefix(CommandRepository.inChunk))
        // Each candidate's latest viewing event says whether it is in standby and when it last watched.
        var last: [String: (kind: String, at: Int64)] = [:]
        for d in try await events.aggregate([
            ["$match": ["d": ["$in": .array(candidates.map { .string($0) })]]],
            ["$sort": ["d": 1, "t": -1]],
            ["$group": ["_id": "$d", "e": ["$first": "$e"], "t": ["$first": "$t"]]],
        ]) {
            if let dev = d["_id"]?.stringValue { last[dev] = (d["e"]?.stringValue ?? "", d["t"]?.dateValue?.millis ?? 0) }
        }
        return Array(
            candidates.filter { dev in
                let l = last[dev]
                let standby = l?.kind == "standby_on"
                // Any viewing or standby event is the last sign of someone at the screen.
                return window.allows(nowMillis: now, utcOffsetMinutes: r.utcOffsetMinutes, inStandby: standby, lastViewingMillis: l?.at)
            }.prefix(n))
    }

    /// Crash, reboot and playback-error counts of updated boxes (since their update, within the
    /// gate's window) against boxes not yet updated (over the window), up to 300 boxes each.
    package func cohorts(_ r: Rollout, now: Int64) async throws -> (CohortStats, CohortStats) {
        guard let gate = r.machine.policy.health else { return (CohortStats(boxHours: 0), CohortStats(boxHours: 0)) }
        let windowStart = now - Int64(gate.windowMinutes) * 60_000
        var since: [String: Int64] = [:]
        let jobs: [BSON] = r.batches.map { .string($0.job) }
        for d in try await executions.find(
            ["job": ["$in": .array(Array(jobs.suffix(50)))], "state": "SUCCEEDED"], sort: ["finishedAt": -1], limit: 200,
            projection: ["device": 1, "finishedAt": 1])
        {
            if let dev = d["device"]?.stringValue, let at = d["finishedAt"]?.dateValue?.millis { since[dev] = max(at, windowStart) }
        }
        let control = Array(r.remaining.prefix(200))
        func stats(_ boxes: [String], from: (String) -> Int64) async throws -> CohortStats {
            guard !boxes.isEmpty else { return CohortStats(boxHours: 0) }
            var s = CohortStats(boxHours: boxes.reduce(0.0) { $0 + Double(now - from($1)) / 3_600_000 })
            var boots: [String: Set<String>] = [:]
            for d in try await events.find(
                ["d": ["$in": .array(boxes.map { .string($0) })], "t": ["$gte": .date(Date(millis: windowStart))]],
                limit: 200_000, projection: ["d": 1, "e": 1, "t": 1, "b": 1])
            {
                guard let dev = d["d"]?.stringValue, let t = d["t"]?.dateValue?.millis, t >= from(dev) else { continue }
                switch d["e"]?.stringValue {
                case "app_crash": s.crashes += 1
                case "play_error": s.playbackErrors += 1
                default: break
                }
                if let b = d["b"]?.stringValue { boots[dev, default: []].insert(b) }
            }
            s.reboots = boots.values.reduce(0) { $0 + max(0, $1.count - 1) }
            return s
        }
        let updated = try await stats(Array(since.keys), from: { since[$0] ?? now })
        let others = try await stats(control, from: { _ in windowStart })
        return (updated, others)
    }
}
