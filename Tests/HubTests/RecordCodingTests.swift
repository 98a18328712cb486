import Commands
import Foundation
import Logging
import MongoStore
import STBProtocol
import Telemetry
import Testing

@testable import ArgusStore
@testable import HubAPI

/// Every stored record type through `BSONEncoder` and `BSONDecoder` (no database): each
/// round-trips, what the hub writes today decodes, and a corrupt document is a
/// `BSONDecodingError` naming the collection, the `_id` and the field.
@Suite("Stored records: BSON round trips and corrupt documents")
struct RecordCodingTests {
    static let t0 = Date(millis: 1_777_636_800_123)
    static let t1 = Date(millis: 1_777_636_860_456)

    func roundTrip<T: Codable & Equatable>(_ value: T, _ collection: String) throws {
        let doc = try BSONEncoder().encode(value)
        let back = try BSONDecoder().decode(T.self, from: doc, collection: collection)
        #expect(back == value, "\(T.self) round trip")
    }

    @Test func everyRecordTypeRoundTrips() throws {
        let (t0, t1) = (Self.t0, Self.t1)
        try roundTrip(
            JobRecord(
                id: "c0001", name: "reboot", params: ["delaySec": .int64(5)], target: ["devices": ["a", "b"]], devices: ["a", "b"], count: 2,
                createdAt: t0, deadline: t1, createdBy: "ops", node: "n1", state: .canceled, canceledAt: t1, canceledBy: "ops",
                materialized: true, materializedCount: 2, updatedAt: t1, v: 3, rollout: "r1", lease: t1, leaseNode: "n2"), Schema.jobs)
        try roundTrip(
            JobRecord(
                id: "c0002", name: "reboot", params: [:], target: ["all": true], spec: JobSpec(model: "m", online: true), createdAt: t0,
                deadline: t1, createdBy: "ops", node: "n1", state: .active, materialized: false), Schema.jobs)
        try roundTrip(
            ExecutionRecord(
                id: "c0001|a", job: "c0001", device: "a", name: "log_pull", params: ["lines": .int64(10)], deadline: t1, state: .succeeded,
                attempts: 1, confirmed: true, confirmedAt: t0, node: "n1", progress: "uploading", reason: "done",
                result: ["lines": ["x", "y"]],
                history: [
                    ExecutionHistoryEntry(state: .queued, at: t0), ExecutionHistoryEntry(state: .inProgress, at: t0, progress: "uploading"),
                    ExecutionHistoryEntry(state: .succeeded, at: t1, reason: "done"),
                ], createdAt: t0, updatedAt: t1, finishedAt: t1), Schema.executions)
        try roundTrip(ExecutionRecord(id: "c0001|b", job: "c0001", device: "b", state: .inProgress), Schema.executions)
        try roundTrip(
            DeviceRecord(
                id: "stb-1", model: "m1", tags: ["lab"], firmware: "1.2", online: true, node: "n1", session: "s1", connectedAt: t0,
                lastSeen: t1, remoteAddress: "10.0.0.1", bootId: "b1", createdAt: t0), Schema.devices)
        try roundTrip(
            TokenDocument(hash: "sha256:ab", tokenId: "t1", name: "ops", role: .operator, createdAt: t0, createdBy: "root", revoked: true, revokedAt: t1),
            Schema.tokens)
        try roundTrip(
            AuditEntry(
                at: t0, actor: "ops", tokenId: "t1", role: "operator", action: "device.revoke", target: "stb-1", parameters: ["a": "b"],
                result: "ok", node: "n1"), Schema.audit)
        try roundTrip(
            AlarmRecord(
                id: "a1", key: "offline|stb-1", rule: "offline", target: "stb-1", state: .acknowledged, active: true, raisedAt: t0,
                acknowledgedAt: t1, acknowledgedBy: "ops", details: ["lastSeen": "x"]), Schema.alarms)
        try roundTrip(
            FirmwareRecord(
                version: "2.0", models: ["m1"], size: 10, sha256: String(repeating: "a", count: 64), url: "http://h/firmware/2.0",
                status: .unavailable, uploaded: true, problem: "chunk 1 of 1 is missing", createdAt: t0, createdBy: "ops", uploadedAt: t1,
                generation: "g1", uploading: .init(gen: "g2", at: t1)), Schema.firmware)
        try roundTrip(
            EventRecord(
                id: "stb-1|b1|7", device: "stb-1", bootId: "b1", seq: 7, t: t0, received: t1, event: "tune", channel: "zdf", code: nil,
                mode: "live"), Schema.events)
        try roundTrip(
            LogRecord(
                id: "stb-1|b1|8", device: "stb-1", bootId: "b1", seq: 8, t: t0, received: t1, level: "warn", source: "player", text: "x",
                tail: nil), Schema.logs)
        try roundTrip(
            MetricBucketRecord(
                id: "stb-1|b1|0", device: "stb-1", bootId: "b1", hour: t0, last: 9,
                samples: [MetricSampleRecord(t: t0, bootId: "b1", seq: 9, values: ["cpu": 12.5, "tempC": 61])]), Schema.metrics)
    }

    @Test func whatTheHubWritesDecodes() throws {
        let decoder = BSONDecoder()
        // A list job and a fleet job, as `CommandRepository.insert` stores them.
        let list = Job(
            id: "c0001", name: "message", params: [("text", .string("hi")), ("durationSec", .int(10))],
            target: .object([("devices", .array([.string("a"), .string("b")]))]), devices: ["a", "b"], createdAt: Self.t0.millis,
            deadline: Self.t1.millis, createdBy: "ops", node: "n1", rollout: "r1")
        let fleet = Job(
            id: "c0002", name: "reboot", params: [], target: .object([("all", .bool(true))]), devices: [], filter: DeviceFilter(model: "m"),
            createdAt: Self.t0.millis, deadline: Self.t1.millis, createdBy: "ops", node: "n1")
        for job in [list, fleet] {
            let record = try decoder.decode(JobRecord.self, from: job.document, collection: Schema.jobs)
            #expect(record == job.record)
            let back = Job(record)
            #expect(back.id == job.id && back.devices == job.devices && back.filter == job.filter && back.state == .active)
            #expect(back.frame == job.frame)
        }
        // An execution's history entry, a new box, a metrics sample.
        let entry = ExecutionTransitions.entry(.inProgress, at: Self.t0, reason: "r", progress: "p")
        #expect(
            try decoder.decode(ExecutionHistoryEntry.self, from: entry) == ExecutionHistoryEntry(state: .inProgress, at: Self.t0, progress: "p", reason: "r"))
        let device = DeviceRepository.document(NewDevice(id: "stb-1", model: "m1", tags: ["a"], secretHash: "sha256:x"), now: Self.t0)
        #expect(try decoder.decode(DeviceRecord.self, from: device) == DeviceRecord(id: "stb-1", model: "m1", tags: ["a"], createdAt: Self.t0))
        var metrics = MetricsSample()
        metrics.cpu = 3
        let sample = MongoTelemetryStore.sampleDocument(StoredSample(bootId: "b1", seq: 4, ts: Self.t0.millis, metrics: metrics))
        #expect(try decoder.decode(MetricSampleRecord.self, fromValue: sample) == MetricSampleRecord(t: Self.t0, bootId: "b1", seq: 4, values: ["cpu": 3]))
        // Older and hand-written documents: numbers stored as int32 or double still read.
        let handMade: Document = [
            "_id": "c0003", "name": "reboot", "params": [:], "createdAt": .date(Self.t0), "deadline": .date(Self.t1), "createdBy": "x",
            "node": "n", "state": "active", "materialized": false, "count": .int32(3), "v": .double(2),
        ]
        let r = try decoder.decode(JobRecord.self, from: handMade, collection: Schema.jobs)
        #expect(r.count == 3 && r.v == 2 && r.target == nil)
    }

    @Test func aCorruptDocumentIsATypedErrorNamingCollectionIdAndField() throws {
        var job = Job(
            id: "c0009", name: "reboot", params: [], target: .object([]), devices: ["a"], createdAt: 0, deadline: 1, createdBy: "x", node: "n"
        ).document
        job["state"] = "paused"
        let e1 = #expect(throws: BSONDecodingError.self) { try Job(decoding: job) }
        #expect(e1?.kind == .invalidValue && e1?.collection == "jobs" && e1?.id == "c0009" && e1?.path == "state")
        #expect(e1?.description.hasPrefix("jobs/_id=c0009: field \"state\": ") == true)
        #expect(Job(job) == nil, "the failable wrapper skips it (and reports it)")

        let execution: Document = [
            "_id": "c0009|a", "job": "c0009", "device": "a", "state": "SENT",
            "history": [["s": "QUEUED", "at": .date(Self.t0)], ["s": .int32(1), "at": .date(Self.t0)]],
        ]
        let e2 = #expect(throws: BSONDecodingError.self) {
            try BSONDecoder().decode(ExecutionRecord.self, from: execution, collection: Schema.executions)
        }
        #expect(e2?.description == "executions/_id=c0009|a: field \"history[1].s\": expected String, found int32")

        let device: Document = ["_id": "stb-9", "tags": ["a"], "online": true]
        let e3 = #expect(throws: BSONDecodingError.self) { try BSONDecoder().decode(DeviceRecord.self, from: device, collection: Schema.devices) }
        #expect(e3?.kind == .missingField && e3?.path == "model" && e3?.description.hasPrefix("devices/_id=stb-9: field \"model\"") == true)

        let alarm: Document = ["_id": "a1", "key": "k", "rule": "r", "target": "t", "state": "snoozed", "details": [:]]
        let e4 = #expect(throws: BSONDecodingError.self) { try BSONDecoder().decode(AlarmRecord.self, from: alarm, collection: Schema.alarms) }
        #expect(e4?.kind == .invalidValue && e4?.path == "state" && e4?.collection == "alarms")

        let firmware: Document = ["_id": "2.0", "models": [], "size": "ten", "sha256": "x", "status": "available", "uploaded": false]
        let e5 = #expect(throws: BSONDecodingError.self) { try BSONDecoder().decode(FirmwareRecord.self, from: firmware, collection: Schema.firmware) }
        #expect(e5?.description == "firmware/_id=2.0: field \"size\": expected Int, found string")

        let token: Document = ["_id": "sha256:ab", "tokenId": "t1", "name": "ops", "role": "root"]
        let e6 = #expect(throws: BSONDecodingError.self) { try BSONDecoder().decode(TokenDocument.self, from: token, collection: Schema.tokens) }
        #expect(e6?.kind == .invalidValue && e6?.path == "role")

        let bucket: Document = ["_id": "m|b|0", "d": "m", "b": "b", "h": .date(Self.t0), "last": .int64(1), "samples": [["t": .date(Self.t0), "cpu": "hot"]]]
        let e7 = #expect(throws: BSONDecodingError.self) { try BSONDecoder().decode(MetricBucketRecord.self, from: bucket, collection: Schema.metrics) }
        #expect(e7?.path == "samples[0].cpu" && e7?.kind == .typeMismatch)
    }

    @Test func aListSkipsTheCorruptDocumentAndCountsIt() {
        let failures = DecodeFailures(collection: Schema.alarms, logger: Logger(label: "t"))
        func alarm(_ id: String, _ state: BSON) -> Document {
            ["_id": .string(id), "key": "k", "rule": "r", "target": "t", "state": state, "details": [:]]
        }
        let items = failures.decodeEach([alarm("a1", "raised"), alarm("a2", .int32(2)), alarm("a3", "cleared")], as: AlarmRecord.self)
        #expect(items.map(\.id) == ["a1", "a3"])
        #expect(failures.reported == 1)
        #expect(throws: BSONDecodingError.self) { try failures.decode(alarm("a4", "gone"), as: AlarmRecord.self) }
        #expect(failures.reported == 2)
    }

    @Test func statesAreEnumsStoredAsTheirText() {
        #expect(JobState(rawValue: "canceled") == .canceled && JobState(rawValue: "CANCELED") == nil)
        #expect(JobState.allCases.map(\.rawValue) == ["active", "canceled"])
        #expect(AlarmStatus.allCases.map(\.rawValue) == ["raised", "acknowledged", "cleared"])
        #expect(FirmwareStatus.allCases.map(\.rawValue) == ["awaiting_upload", "available", "unavailable"])
    }

    /// The job and execution views: field names and value shapes as docs/api.md gives them
    /// (times in ms, history entries' `s` shown as `state`, no `v`/`lease`/`_id`).
    @Test func jobAndExecutionViewsKeepTheDocumentedShape() throws {
        let record = JobRecord(
            id: "c0001", name: "reboot", params: ["delaySec": .int64(5)], target: ["devices": ["a"]], devices: ["a"], count: 1,
            createdAt: Self.t0, deadline: Self.t1, createdBy: "ops", node: "n1", state: .canceled, canceledAt: Self.t1, canceledBy: "ops",
            materialized: true, updatedAt: Self.t1, v: 4, lease: Self.t1, leaseNode: "n2")
        func text(_ v: JSONValue) -> String {
            var w = JSONWriter()
            w.raw(v)
            return String(decoding: w.bytes, as: UTF8.self)
        }
        #expect(
            text(JobView(record).json)
                == #"{"id":"c0001","name":"reboot","params":{"delaySec":5},"target":{"devices":["a"]},"count":1,"createdAt":1777636800123,"deadline":1777636860456,"createdBy":"ops","node":"n1","state":"canceled","canceledAt":1777636860456,"canceledBy":"ops","materialized":true,"updatedAt":1777636860456}"#
        )
        let withCounts = text(JobView(record, counts: ["SUCCEEDED": 1], includeDevices: true).json)
        #expect(withCounts.contains(#""devices":["a"]"#) && withCounts.contains(#""executions":{"QUEUED":0,"#) && withCounts.contains(#""SUCCEEDED":1"#))
        let execution = ExecutionRecord(
            id: "c0001|a", job: "c0001", device: "a", name: "reboot", state: .failed, attempts: 2, reason: "boom",
            history: [ExecutionHistoryEntry(state: .queued, at: Self.t0), ExecutionHistoryEntry(state: .failed, at: Self.t1, reason: "boom")],
            createdAt: Self.t0)
        #expect(
            text(ExecutionView(execution).json)
                == #"{"job":"c0001","device":"a","name":"reboot","state":"FAILED","attempts":2,"reason":"boom","history":[{"state":"QUEUED","at":1777636800123},{"state":"FAILED","at":1777636860456,"reason":"boom"}],"createdAt":1777636800123}"#
        )
    }
}
