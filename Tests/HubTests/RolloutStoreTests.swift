import ArgusSupport
import Commands
import Foundation
import Logging
import MongoStore
import STBProtocol
import Testing

@testable import ArgusStore
@testable import CommandRuntime
@testable import Hub
@testable import HubAPI
@testable import HubGateway

/// The rollout driver against the real store (MONGODB_URI): batches become jobs, finished
/// installs are counted from executions, and the health gate reads real events.
@Suite("Rollouts against the database")
struct RolloutStoreTests {
    func withService(_ body: (MongoStore, RolloutService) async throws -> Void) async throws {
        guard let uri = ProcessInfo.processInfo.environment["MONGODB_URI"] else {
            Issue.record("MONGODB_URI is not set: run through scripts/test")
            return
        }
        let db = "ro_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let store = try MongoStore(uri: uri, database: db, threads: 2, logger: Logger(label: "t"))
        try await Schema.ensureIndexes(store)
        let commands = CommandService(store: store, registry: ConnectionRegistry(), node: "n1", logger: Logger(label: "t"))
        let service = RolloutService(store: store, commands: commands, node: "n1", healthEvery: .seconds(0), logger: Logger(label: "t"))
        try await service.firmware.add(
            version: "9.0", models: [], size: 10, sha256: String(repeating: "a", count: 64),
            url: "http://fw.example/9.0", by: "t")
        do { try await body(store, service) } catch {
            try? await store.dropDatabase(); await store.shutdown(); throw error
        }
        try await store.dropDatabase()
        await store.shutdown()
    }

    func rollout(_ service: RolloutService, boxes: Int, policy: RolloutPolicy, now: Int64) async throws -> String {
        let r = Rollout(
            id: "r-\(UUID().uuidString.prefix(8))", firmware: "9.0", target: "{}", utcOffsetMinutes: 0, createdBy: "t",
            machine: try RolloutMachine(policy: policy, targetCount: boxes, createdAt: now),
            remaining: (0..<boxes).map { String(format: "b%03d", $0) }, batches: [])
        try await service.insert(r, now: now)
        return r.id
    }

    /// Marks every execution of the rollout's jobs as finished, `failEvery`-th one failed,
    /// except the first `leaveOpen` that would have succeeded: those stay open (as created).
    /// Returns the boxes left open.
    @discardableResult
    func finishAll(
        _ store: MongoStore, _ service: RolloutService, _ id: String, failEvery: Int = 0, leaveOpen: Int = 0,
        at: Date
    ) async throws -> [String] {
        let (r, _) = try #require(try await service.load(id))
        var k = 0
        var open: [String] = []
        for b in r.batches {
            for d in b.devices {
                k += 1
                let failed = failEvery > 0 && k % failEvery == 0
                if !failed && open.count < leaveOpen { open.append(d); continue }
                _ = try await store.collection(Schema.executions).updateOne(
                    ["_id": .string(CommandRepository.executionID(b.job, d))],
                    [
                        "$set": ["state": .string(failed ? "FAILED" : "SUCCEEDED"), "finishedAt": .date(at)]
                    ])
            }
        }
        return open
    }

    /// The state of each execution of `job`, by box.
    func executionStates(_ store: MongoStore, job: String) async throws -> [String: String] {
        var states: [String: String] = [:]
        for e in try await store.collection(Schema.executions).find(["job": .string(job)]) {
            if let d = e["device"]?.stringValue { states[d] = e["state"]?.stringValue ?? "" }
        }
        return states
    }

    @Test func wavesAdvanceOnSuccessAndTheRateLimitHolds() async throws {
        try await withService { store, service in
            let now = Date().millis
            let policy = try RolloutPolicy(waves: [10, 50, 100], ratePerMinute: 1000, successThreshold: 0.9, failureThreshold: 0.5, minFailureCount: 3)
            let id = try await rollout(service, boxes: 20, policy: policy, now: now)
            try await service.drive(id)
            var (r, _) = try #require(try await service.load(id))
            #expect(r.batches.count == 1 && r.batches[0].devices.count == 2 && r.batches[0].created)
            let job = try #require(try await service.commands.repository.job(r.batches[0].job, withDevices: true))
            #expect(job["name"]?.stringValue == "firmware_update" && job["rollout"]?.stringValue == id)
            #expect(job["params"]?.documentValue?["url"]?.stringValue == "http://fw.example/9.0")
            try await service.drive(id)  // wave 1 still in flight: nothing new
            (r, _) = try #require(try await service.load(id))
            #expect(r.batches.count == 1)
            try await finishAll(store, service, id, at: Date())
            try await service.drive(id)
            (r, _) = try #require(try await service.load(id))
            #expect(r.machine.succeeded == 2 && r.machine.currentWave == 1 && r.batches.count == 2 && r.batches[1].devices.count == 8)
            #expect(r.remaining.count == 10)
            // A rate that binds: 3 a minute for 20 eligible boxes in one wave. The bucket starts
            // with a minute's worth (3); the next token comes 20 s later, far more than the two
            // drives below take.
            let slow = try RolloutPolicy(waves: [100], ratePerMinute: 3, successThreshold: 0.9, failureThreshold: 0.5, minFailureCount: 3)
            let limited = try await rollout(service, boxes: 20, policy: slow, now: Date().millis)
            try await service.drive(limited)
            (r, _) = try #require(try await service.load(limited))
            #expect(r.batches.count == 1 && r.batches.first?.devices.count == 3, "\(r.batches.map(\.devices))")
            #expect(r.remaining.count == 17)
            try await service.drive(limited)  // the bucket is empty: nothing more starts
            (r, _) = try #require(try await service.load(limited))
            #expect(r.batches.count == 1 && r.remaining.count == 17, "\(r.batches.map(\.devices))")
        }
    }

    @Test func failuresPastTheThresholdPauseAndAbortCancelsOpenExecutions() async throws {
        try await withService { store, service in
            let policy = try RolloutPolicy(waves: [50, 100], ratePerMinute: 1000, successThreshold: 0.9, failureThreshold: 0.3, minFailureCount: 3)
            let id = try await rollout(service, boxes: 20, policy: policy, now: Date().millis)
            try await service.drive(id)
            // 5 of the 10 fail, 3 succeed and 2 are still open (QUEUED: no box is connected).
            let open = try await finishAll(store, service, id, failEvery: 2, leaveOpen: 2, at: Date())
            #expect(open.count == 2)
            try await service.drive(id)
            var (r, _) = try #require(try await service.load(id))
            #expect(r.machine.state.name == "paused" && r.machine.state.reason?.hasPrefix("failure threshold") == true)
            #expect(r.machine.failed == 5 && r.batches.count == 1)
            let before = try await executionStates(store, job: r.batches[0].job)
            #expect(open.allSatisfy { before[$0] == "QUEUED" }, "\(before)")
            // Abort: open executions of its jobs are canceled; finished ones keep their state.
            r = try #require(try await service.abort(id, reason: "stop"))
            #expect(r.machine.state == .aborted(reason: "stop"))
            #expect(try await service.commands.repository.job(r.batches[0].job)?["state"]?.stringValue == "canceled")
            let after = try await executionStates(store, job: r.batches[0].job)
            #expect(after.count == 10)
            #expect(open.allSatisfy { after[$0] == "CANCELED" }, "\(after)")
            #expect(after.filter { !open.contains($0.key) } == before.filter { !open.contains($0.key) }, "\(after)")
            #expect(after.values.filter { $0 == "FAILED" }.count == 5 && after.values.filter { $0 == "SUCCEEDED" }.count == 3)
            await #expect(throws: CommandError.self) { _ = try await service.resume(id) }
        }
    }

    @Test func aHealthRegressionOfTheUpdatedBoxesPausesTheRollout() async throws {
        try await withService { store, service in
            let now = Date()
            let gate = try HealthGate(windowMinutes: 60, minExposureHours: 2, maxRelativeIncrease: 0.5, confidence: 2.33)
            let policy = try RolloutPolicy(
                waves: [50, 100], ratePerMinute: 1000, successThreshold: 0.9, failureThreshold: 0.5,
                minFailureCount: 100, health: gate)
            let id = try await rollout(service, boxes: 20, policy: policy, now: now.millis - 3_600_000)
            try await service.drive(id)
            try await finishAll(store, service, id, at: now.addingTimeInterval(-1800))
            // Over the last half hour: the 10 updated boxes crash 4 times each, the 10 others once in all.
            let (r0, _) = try #require(try await service.load(id))
            var docs: [Document] = []
            var seq: Int64 = 0
            for d in r0.batches[0].devices {
                for k in 0..<4 {
                    seq += 1
                    docs.append([
                        "_id": .string("\(d)|b|\(seq)"), "d": .string(d), "b": "b", "s": .int64(seq),
                        "t": .date(now.addingTimeInterval(Double(-600 - k * 60))), "e": "app_crash",
                    ])
                }
            }
            docs.append(["_id": "b019|b|1", "d": "b019", "b": "b", "s": .int64(1), "t": .date(now.addingTimeInterval(-300)), "e": "app_crash"])
            _ = try await store.collection(Schema.events).insertMany(docs)
            let (updated, control) = try await service.cohorts(r0, now: now.millis)
            #expect(updated.crashes == 40 && control.crashes == 1)
            #expect(abs(updated.boxHours - 5) < 0.1 && abs(control.boxHours - 10) < 0.1)
            try await service.drive(id)
            let (r, _) = try #require(try await service.load(id))
            #expect(r.machine.state.name == "paused")
            #expect(r.machine.state.reason?.contains("health regression: crashes") == true, "\(r.machine.state)")
        }
    }

    @Test func theMaintenanceWindowLetsOnlyIdleOrStandbyBoxesInsideItsHoursStart() async throws {
        try await withService { store, service in
            let now = Date()
            let minute = MaintenanceWindow.localMinute(nowMillis: now.millis, utcOffsetMinutes: 0)
            // The hours alone (no standby or idle rule, so every box qualifies but for the time).
            // A window that opened an hour ago and closed a minute ago: nothing starts.
            let closed = try MaintenanceWindow(startMinute: (minute + 1380) % 1440, endMinute: (minute + 1439) % 1440)
            let p1 = try RolloutPolicy(waves: [100], ratePerMinute: 1000, successThreshold: 0.9, failureThreshold: 0.5, minFailureCount: 3, window: closed)
            let shut = try await rollout(service, boxes: 4, policy: p1, now: now.millis)
            try await service.drive(shut)
            #expect(try #require(try await service.load(shut)).0.batches.isEmpty)
            // The same rule, open now (from 10 minutes ago to 10 minutes ahead): all four start.
            let hours = try MaintenanceWindow(startMinute: (minute + 1430) % 1440, endMinute: (minute + 10) % 1440)
            let p0 = try RolloutPolicy(waves: [100], ratePerMinute: 1000, successThreshold: 0.9, failureThreshold: 0.5, minFailureCount: 3, window: hours)
            let inside = try await rollout(service, boxes: 4, policy: p0, now: now.millis)
            try await service.drive(inside)
            let (ri, _) = try #require(try await service.load(inside))
            #expect(ri.batches.count == 1 && Set(ri.batches.first?.devices ?? []) == ["b000", "b001", "b002", "b003"])
            #expect(ri.remaining.isEmpty)
            // An open window needing standby or 30 idle minutes: b000 is in standby, b001 watched
            // an hour ago, b002 is watching now, b003 has no events (idle).
            let open = try MaintenanceWindow(startMinute: (minute + 1430) % 1440, endMinute: (minute + 10) % 1440, requireStandby: true, idleMinutes: 30)
            let p2 = try RolloutPolicy(waves: [100], ratePerMinute: 1000, successThreshold: 0.9, failureThreshold: 0.5, minFailureCount: 3, window: open)
            let id = try await rollout(service, boxes: 4, policy: p2, now: now.millis)
            func ev(_ d: String, _ e: String, _ agoSec: Double) -> Document {
                [
                    "_id": .string("\(d)|\(e)|\(agoSec)"), "d": .string(d), "b": "b", "s": .int64(1), "t": .date(now.addingTimeInterval(-agoSec)),
                    "e": .string(e),
                ]
            }
            _ = try await store.collection(Schema.events).insertMany([
                ev("b000", "tune", 120), ev("b000", "standby_on", 60), ev("b001", "tune", 3600), ev("b002", "tune", 30),
            ])
            try await service.drive(id)
            let (r, _) = try #require(try await service.load(id))
            #expect(r.batches.count == 1)
            #expect(Set(r.batches.first?.devices ?? []) == ["b000", "b001", "b003"])
            #expect(r.remaining == ["b002"])
        }
    }

    @Test func rolloutsAreStoredAsBSONSubDocumentsAndRoundTrip() async throws {
        try await withService { store, service in
            let health = try HealthGate(windowMinutes: 60, minExposureHours: 2, maxRelativeIncrease: 0.5, confidence: 2.33)
            let window = try MaintenanceWindow(startMinute: 1380, endMinute: 240, requireStandby: true, idleMinutes: 30)
            let policy = try RolloutPolicy(
                waves: [1, 10, 50, 100], ratePerMinute: 60, successThreshold: 0.95, failureThreshold: 0.1,
                minFailureCount: 5, onFailure: .abort, health: health, window: window)
            let now = Date().millis
            let id = try await rollout(service, boxes: 3, policy: policy, now: now)
            _ = try #require(try await service.pause(id, reason: "checking"))
            let raw = try #require(try await store.collection(Schema.rollouts).findOne(["_id": .string(id)]))
            let doc = try #require(raw["doc"]?.documentValue, "doc is a sub-document, not JSON text")
            let machine = try #require(doc["machine"]?.documentValue)
            #expect(machine["state"] == ["state": "paused", "reason": "checking"])
            #expect(machine["policy"]?.documentValue?["onFailure"] == "abort")
            #expect(machine["history"]?.arrayValue?.count == 2)
            #expect(doc["remaining"] == ["b000", "b001", "b002"])
            #expect(raw["state"] == "paused" && raw["v"]?.intValue == 2 && raw["createdAt"]?.dateValue != nil)
            let (r, v) = try #require(try await service.load(id))
            #expect(v == 2 && r.id == id && r.remaining == ["b000", "b001", "b002"] && r.utcOffsetMinutes == 0)
            #expect(r.machine.policy == policy && r.machine.state == .paused(reason: "checking"))
            var expected = try RolloutMachine(policy: policy, targetCount: 3, createdAt: now)
            try expected.pause(now: r.machine.history[1].at, reason: "checking")
            #expect(r.machine == expected)
        }
    }

    @Test func aCorruptRolloutIsATypedErrorAndTheOthersStillLoadAndRun() async throws {
        try await withService { store, service in
            let policy = try RolloutPolicy(waves: [100], ratePerMinute: 1000, successThreshold: 0.9, failureThreshold: 0.5, minFailureCount: 3)
            let rollouts = store.collection(Schema.rollouts)
            // Hand-written corrupt rollouts, with ids that sort before and after the good one:
            // a history state stored as a number, a policy with an unknown onFailure, and the old
            // shape (the rollout as JSON text).
            let template = try await rollout(service, boxes: 2, policy: policy, now: Date().millis)
            var base = try #require(try await rollouts.findOne(["_id": .string(template)]))
            _ = try await rollouts.deleteOne(["_id": .string(template)])
            var doc = try #require(base["doc"]?.documentValue)
            var machine = try #require(doc["machine"]?.documentValue)
            var badState = machine
            badState["history"] = [["state": .int32(3), "at": .int64(1)]]
            doc["machine"] = .document(badState)
            base["_id"] = "r-0-bad-state"
            base["doc"] = .document(doc)
            try await rollouts.insertOne(base)
            var policyDoc = try #require(machine["policy"]?.documentValue)
            policyDoc["onFailure"] = "explode"
            machine["policy"] = .document(policyDoc)
            doc["machine"] = .document(machine)
            base["_id"] = "r-z-bad-enum"
            base["doc"] = .document(doc)
            try await rollouts.insertOne(base)
            base["_id"] = "r-1-json-text"
            base["doc"] = .string(#"{"id":"r-1-json-text","firmware":"9.0"}"#)
            try await rollouts.insertOne(base)

            let good = try await rollout(service, boxes: 2, policy: policy, now: Date().millis)

            let e1 = await #expect(throws: BSONDecodingError.self) { try await service.load("r-0-bad-state") }
            #expect(e1?.kind == .typeMismatch)
            #expect(e1?.description == "rollouts/_id=r-0-bad-state: field \"doc.machine.history[0].state\": expected String, found int32")
            let e2 = await #expect(throws: BSONDecodingError.self) { try await service.load("r-z-bad-enum") }
            #expect(e2?.kind == .invalidValue && e2?.path == "doc.machine.policy.onFailure" && e2?.reason.contains("explode") == true)
            let e3 = await #expect(throws: BSONDecodingError.self) { try await service.load("r-1-json-text") }
            #expect(e3?.description == "rollouts/_id=r-1-json-text: field \"doc\": expected document, found string")
            // Not "not found": that stays nil.
            #expect(try await service.load("r-none") == nil)
            // Operator actions on a corrupt rollout throw the same error.
            await #expect(throws: BSONDecodingError.self) { _ = try await service.pause("r-0-bad-state", reason: "x") }

            // The list skips the corrupt ones; the tick drives the good one past them.
            #expect(try await service.list(limit: 100).map(\.id) == [good])
            #expect(service.decodeFailures.reported == 7)  // 3 loads, the pause, 3 in the list
            try await service.driveAll()
            #expect(service.decodeFailures.reported == 10)  // and the 3 the tick skipped
            let (r, _) = try #require(try await service.load(good))
            #expect(r.batches.count == 1 && r.batches[0].created && r.remaining.isEmpty)
        }
    }
}
