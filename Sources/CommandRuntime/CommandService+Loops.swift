import ArgusStore
import ArgusSupport
import Atomics
import Commands
import Foundation
import HubGateway
import Logging
import Metrics
import MongoStore
import NIOConcurrencyHelpers
import NIOCore
import STBProtocol
import ServiceLifecycle
import Synchronization

/// The command service's background loops: hello lookups, per-execution ticks (retries,
/// timeouts), the store sweep, and the job feed (change stream on `jobs`, polling fallback).
extension CommandService {
    // MARK: - Loops

    package func run() async throws {
        if let gate {
            guard await cancelWhenGracefulShutdown({ await gate.wait() }) == true else { return }
        }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.writer.run() }
            group.addTask { await self.notificationLoop() }
            group.addTask { await self.helloLoop() }
            group.addTask { await self.tickLoop() }
            group.addTask { await self.sweepLoop() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await writer.flush()
    }

    /// Looks up the open executions of boxes that said hello, one query per batch.
    private func helloLoop() async {
        while !Task.isCancelled {
            let batch = state.withLock { $0.takeHellos(max: CommandRepository.inChunk) }
            if batch.isEmpty { try? await Task.sleep(for: .milliseconds(50)); continue }
            var attempt = 0
            while !Task.isCancelled {
                do {
                    try await deliverPending(batch)
                    break
                } catch {
                    attempt += 1
                    logger.warning(
                        "pending commands lookup failed; retrying",
                        metadata: [LogKey.error: .string("\(error)"), LogKey.boxes: .stringConvertible(batch.count)])
                    try? await Task.sleep(for: .seconds(min(30, 1 << min(attempt, 5))))
                }
            }
        }
    }

    private func deliverPending(_ batch: [SessionHandle]) async throws {
        let devices = batch.map(\.deviceID)
        let docs = try await repository.executions.find(
            ["device": ["$in": .array(devices.map { .string($0) })], "state": ["$in": .array(CommandRepository.open)]],
            sort: ["_id": 1], limit: 100 * devices.count)
        var jobs: [String: (Announced, [String])] = [:]
        for e in repository.executionDecodeFailures.decodeEach(docs, as: ExecutionRecord.self) {
            guard let name = e.name else { continue }
            if var entry = jobs[e.job] {
                entry.1.append(e.device)
                jobs[e.job] = entry
            } else {
                let params: [(String, JSONValue)] = if case .object(let m)? = e.params.map({ BSON.document($0) })?.json { m } else { [] }
                let j = Job(
                    id: e.job, name: name, params: params, target: .null, devices: [], createdAt: e.createdAt?.millis ?? 0,
                    deadline: e.deadline?.millis ?? Int64.max, createdBy: "", node: "")
                jobs[e.job] = (Announced(j), [e.device])
            }
        }
        let extra = state.withLock { s in Array(s.unmaterialized.values) }
        for a in extra {
            let mine = if let f = a.filter { devices.filter { registry.matches($0, f) } } else { devices.filter { a.devices.contains($0) } }
            if !mine.isEmpty { jobs[a.id, default: (a, [])].1.append(contentsOf: mine) }
        }
        for (_, (a, ds)) in jobs { deliverLocal(a, devices: ds) }
    }

    /// Retries, run timeouts and expiry of the executions delivered here.
    private func tickLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let now = now()
            let t = state.withLock { s in
                let t = s.tick(now: now)
                trackedGauge.record(s.trackedCount)
                return t
            }
            // Unconfirmed deliveries back in the queue for their retry are stored too, so the
            // execution's history shows every transition (its state is QUEUED while it backs off).
            for key in t.requeued { writer.requeue(key, at: now) }
            for r in t.resend { r.session.sendCommand(r.job.frame) }
            for (job, rs) in Dictionary(grouping: t.resend, by: { $0.job.id }) { writer.sent(job: job, devices: rs.map(\.device), at: now) }
            for f in t.finished {
                finished.increment()
                writer.finish(f.key, f.state, reason: f.reason, at: now)
            }
        }
    }

    /// Any node may run it; every write is guarded, so nodes sweeping at once do no harm.
    private func sweepLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.sweepInterval)
            do { try await sweep(now: Date(timeIntervalSince1970: Double(now()) / 1000)) } catch {
                logger.debug("command sweep failed", metadata: [LogKey.error: .string("\(error)")])
            }
        }
    }

    package func sweep(now: Date) async throws {
        let ex = repository.executions
        _ = try await ExecutionTransitions.apply(
            ["deadline": ["$lt": .date(now)]], ExecutionChange(to: .expired, at: now, reason: "deadline passed"), on: ex)
        // Executions a dead node delivered and nobody heard of since.
        let t = configuration.timeouts
        let orphanAge = Double(t.runMillis + t.ackMillis * Int64(t.maxAttempts)) / 1000
        _ = try await ExecutionTransitions.apply(
            ["updatedAt": ["$lt": .date(now.addingTimeInterval(-orphanAge))]],
            ExecutionChange(to: .timedOut, at: now, reason: "no report for \(Int(orphanAge)) s"), on: ex)
        // Jobs whose creating node stopped before writing every execution: take a lease, finish.
        let stale = now.addingTimeInterval(-60)
        if let d = try await repository.jobs.findOneAndUpdate(
            [
                "materialized": false, "createdAt": ["$lt": .date(stale)],
                "$or": [["lease": ["$exists": false]], ["lease": ["$lt": .date(now)]]],
            ],
            ["$set": ["lease": .date(now.addingTimeInterval(300)), "leaseNode": .string(node)]]), let job = Job(d)
        {
            logger.notice("finishing the executions of a job left incomplete", metadata: [LogKey.job: .string(job.id)])
            try await materialize(job)
        }
    }

    /// Follows `jobs` changes from other nodes: change stream with a polling fallback.
    private func notificationLoop() async {
        var since = Date().addingTimeInterval(-5)
        var resume: Document? = nil
        while !Task.isCancelled {
            if configuration.notification == .changeStream {
                let stream = repository.jobs.watch(
                    [["$match": ["operationType": ["$in": ["insert", "update", "replace"]]]]],
                    options: WatchOptions(fullDocument: true, resumeAfter: resume, maxAwaitMilliseconds: 500))
                do {
                    // Catch up on what changed while no stream was open.
                    since = try await pollOnce(since: since)
                    for try await event in stream {
                        if let token = event["_id"]?.documentValue { resume = token }
                        if let doc = event["fullDocument"]?.documentValue { handle(doc) }
                        since = Date().addingTimeInterval(-5)
                    }
                } catch {
                    stream.stop()
                    resume = nil
                    logger.warning(
                        "jobs change stream unavailable; polling for 30 s before retrying (a real MongoDB needs a replica set)",
                        metadata: [LogKey.error: .string("\(error)")])
                    let until = ContinuousClock.now + .seconds(30)
                    while !Task.isCancelled && ContinuousClock.now < until {
                        since = (try? await pollOnce(since: since)) ?? since
                        try? await Task.sleep(for: configuration.pollInterval)
                    }
                }
            } else {
                since = (try? await pollOnce(since: since)) ?? since
                try? await Task.sleep(for: configuration.pollInterval)
            }
        }
    }

    /// Handles jobs changed since `since`; returns where the next poll starts (with a margin
    /// for clock skew between nodes; versions make repeats harmless).
    private func pollOnce(since: Date) async throws -> Date {
        let started = Date()
        for d in try await repository.jobsChanged(since: since) { handle(d) }
        return started.addingTimeInterval(-2)
    }

    private func handle(_ doc: Document) {
        guard let id = doc["_id"]?.stringValue, let v = doc["v"]?.intValue, let job = Job(doc) else { return }
        let seen = state.withLock { $0.observe(job: id, version: v) }
        if seen == .stale { return }
        if job.state == .canceled { cancelLocal(id); return }
        guard job.deadline > now() else { return }
        let a = Announced(job)
        state.withLock { s in
            if job.materialized { s.materialized(id) } else { s.remember(a) }
        }
        guard seen == .first else { return }
        if let f = job.filter { deliverLocal(a, sessions: registry.sessions(matching: f)) } else { deliverLocal(a, devices: job.devices) }
    }
}
