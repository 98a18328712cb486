import ArgusSupport
import ArgusTestSupport
import Commands
import Foundation
import Logging
import MongoStore
import STBProtocol
import Telemetry
import Testing

@testable import ArgusStore
@testable import CommandRuntime
@testable import Hub
@testable import HubAPI
@testable import HubGateway

/// Jobs, executions and box reports against the real store (MONGODB_URI).
@Suite("Command store")
struct CommandStoreTests {
    func withStore(_ body: (MongoStore) async throws -> Void) async throws {
        try await withTestStore("cmd", body)
    }

    func job(_ devices: [String], now: Int64 = Date().millis) -> Job {
        Job(
            id: Job.newID(now: now), name: "message", params: [("text", .string("hi")), ("durationSec", .int(10))],
            target: .object([("devices", .array(devices.map { .string($0) }))]), devices: devices, createdAt: now,
            deadline: now + 60_000, createdBy: "t", node: "n1")
    }

    func status(
        _ ref: String, _ device: String, _ seq: Int64, _ state: CommandStatus.State, progress: String? = nil,
        reason: String? = nil, result: JSONValue? = nil
    ) -> StoredCommandStatus {
        StoredCommandStatus(
            deviceID: device, seq: seq, ts: 0, receivedAt: Date().millis + seq,
            status: CommandStatus(ref: ref, state: state, progress: progress, reason: reason, result: result))
    }

    @Test func reportsMoveExecutionsForwardOnlyAndKeepEveryTransition() async throws {
        try await withStore { store in
            let repo = CommandRepository(store: store)
            let j = job(["a", "b", "c"])
            try await repo.insert(j)
            try await repo.materialize(j)
            try await repo.markMaterialized(j.id)
            let telemetry = MongoTelemetryStore(store: store)
            try await telemetry.applyCommandStatuses([
                status(j.id, "a", 1, .received), status(j.id, "a", 2, .inProgress, progress: "downloading"),
                status(j.id, "a", 3, .inProgress, progress: "installing"),
                status(j.id, "a", 4, .succeeded, result: .object([("lines", .array([.string("x")]))])),
                status(j.id, "b", 1, .rejected, reason: "no screen"),
                status("unknown-job", "a", 9, .failed, reason: "ignored"),
            ])
            // A late or repeated report changes nothing after a terminal state.
            try await telemetry.applyCommandStatuses([status(j.id, "a", 5, .failed, reason: "late"), status(j.id, "b", 2, .succeeded)])
            let a = try #require(try await repo.execution(job: j.id, device: "a"))
            #expect(a["state"]?.stringValue == "SUCCEEDED")
            // The reports reached the store before any node wrote SENT: they write it (docs/commands.md).
            #expect(
                a["history"]?.arrayValue?.compactMap { $0.documentValue?["s"]?.stringValue } == ["QUEUED", "SENT", "IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"])
            #expect(a["history"]?.arrayValue?.compactMap { $0.documentValue?["progress"]?.stringValue } == ["downloading", "installing"])
            #expect(a["result"]?.documentValue?["lines"]?.arrayValue == [.string("x")])
            #expect(a["confirmedAt"]?.dateValue != nil)
            let b = try #require(try await repo.execution(job: j.id, device: "b"))
            #expect(b["state"]?.stringValue == "REJECTED" && b["reason"]?.stringValue == "no screen")
            #expect(try await repo.counts(job: j.id) == ["SUCCEEDED": 1, "REJECTED": 1, "QUEUED": 1])
            #expect(try await repo.executions.count(["job": "unknown-job"]) == 0)
        }
    }

    @Test func aReportThatBeatsTheSentWriteWritesSentAndTheLateSentWriteAddsNothing() async throws {
        try await withStore { store in
            let repo = CommandRepository(store: store)
            let j = job(["a", "b"])
            try await repo.insert(j)
            try await repo.materialize(j)
            let telemetry = MongoTelemetryStore(store: store)
            // The box got the frame and reported before the delivering node flushed its SENT.
            try await telemetry.applyCommandStatuses([status(j.id, "a", 1, .inProgress), status(j.id, "b", 1, .received)])
            let writer = ExecutionWriter(collection: repo.executions, node: "n1", logger: Logger(label: "t"))
            writer.sent(job: j.id, devices: ["a", "b"], at: Date().millis)
            await writer.flush()
            let a = try #require(try await repo.execution(job: j.id, device: "a"))
            let b = try #require(try await repo.execution(job: j.id, device: "b"))
            #expect(a["history"]?.arrayValue?.compactMap { $0.documentValue?["s"]?.stringValue } == ["QUEUED", "SENT", "IN_PROGRESS"])
            #expect(b["history"]?.arrayValue?.compactMap { $0.documentValue?["s"]?.stringValue } == ["QUEUED", "SENT"])
            #expect(a["state"]?.stringValue == "IN_PROGRESS" && b["state"]?.stringValue == "SENT" && b["confirmed"]?.boolValue == true)
        }
    }

    @Test func aReportBeforeItsExecutionIsStoredIsKeptAndTheJobFieldsFilledIn() async throws {
        try await withStore { store in
            let repo = CommandRepository(store: store)
            let j = job(["a", "b"])
            try await repo.insert(j)
            try await MongoTelemetryStore(store: store).applyCommandStatuses([status(j.id, "a", 1, .received), status(j.id, "a", 2, .succeeded)])
            try await repo.materialize(j)
            let a = try #require(try await repo.execution(job: j.id, device: "a"))
            #expect(a["state"]?.stringValue == "SUCCEEDED" && a["name"]?.stringValue == "message" && a["deadline"]?.dateValue != nil)
            #expect(try await repo.execution(job: j.id, device: "b")?["state"]?.stringValue == "QUEUED")
        }
    }

    @Test func cancellingIsIdempotentAndLeavesFinishedExecutionsAlone() async throws {
        try await withStore { store in
            let service = CommandService(store: store, registry: ConnectionRegistry(), node: "n1", logger: Logger(label: "t"))
            let j = job(["a", "b"])
            try await service.create(j)
            try await MongoTelemetryStore(store: store).applyCommandStatuses([status(j.id, "a", 1, .succeeded)])
            let first = try await service.cancel(job: j.id, by: "op")
            let second = try await service.cancel(job: j.id, by: "op")
            #expect(first.exists && first.changed && first.executions == 1)
            #expect(second.exists && !second.changed && second.executions == 0)
            #expect(try await service.cancel(job: "nope", by: "op").exists == false)
            #expect(try await service.repository.counts(job: j.id) == ["SUCCEEDED": 1, "CANCELED": 1])
            #expect(try await service.repository.job(j.id)?["state"]?.stringValue == "canceled")
        }
    }

    @Test func theSweepExpiresQueuedExecutionsPastTheirDeadline() async throws {
        try await withStore { store in
            let service = CommandService(store: store, registry: ConnectionRegistry(), node: "n1", logger: Logger(label: "t"))
            let now = Date().millis
            var j = job(["a"], now: now - 120_000)
            j.deadline = now - 1000
            try await service.repository.insert(j)
            try await service.repository.materialize(j)
            try await service.sweep(now: Date())
            let a = try #require(try await service.repository.execution(job: j.id, device: "a"))
            #expect(a["state"]?.stringValue == "EXPIRED")
            #expect(a["history"]?.arrayValue?.compactMap { $0.documentValue?["s"]?.stringValue } == ["QUEUED", "EXPIRED"])
            // The job was created over a minute ago and never marked complete: the sweep takes it over.
            #expect(try await service.repository.job(j.id)?["materialized"]?.boolValue == true)
        }
    }

    @Test func aFleetJobLeftIncompleteIsResolvedFromTheStoreByTheSweep() async throws {
        try await withStore { store in
            let service = CommandService(store: store, registry: ConnectionRegistry(), node: "n1", logger: Logger(label: "t"))
            let devices = DeviceRepository(store: store)
            for (id, model) in [("x1", "fleet-x"), ("x2", "fleet-x"), ("y1", "other")] {
                _ = try await devices.register(id: id, model: model, tags: [], secretHash: "h", now: Date())
            }
            _ = try await devices.revoke("x2", now: Date())
            let now = Date().millis
            // A fleet job stored by a node that stopped before resolving its boxes.
            let j = Job(
                id: Job.newID(now: now - 120_000), name: "reboot", params: [], target: .object([("query", .object([("model", .string("fleet-x"))]))]),
                devices: [], filter: DeviceFilter(model: "fleet-x"), createdAt: now - 120_000, deadline: now + 60_000, createdBy: "t", node: "gone")
            try await service.repository.insert(j)
            let stored = try #require(try await service.repository.job(j.id, withDevices: true))
            #expect(stored["devices"] == nil && stored["count"] == nil && stored["spec"]?.documentValue?["model"]?.stringValue == "fleet-x")
            #expect(Job(stored)?.filter == DeviceFilter(model: "fleet-x"))
            try await service.sweep(now: Date())
            // Only the matching box that is not revoked gets an execution.
            #expect(try await service.repository.execution(job: j.id, device: "x1")?["state"]?.stringValue == "QUEUED")
            #expect(try await service.repository.execution(job: j.id, device: "x2") == nil)
            #expect(try await service.repository.execution(job: j.id, device: "y1") == nil)
            let after = try #require(try await service.repository.job(j.id))
            #expect(after["count"]?.intValue == 1 && after["materialized"]?.boolValue == true)
        }
    }
}
