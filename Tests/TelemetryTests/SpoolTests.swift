import ArgusTestSupport
import Foundation
import STBProtocol
import Testing

@testable import Telemetry

@Suite("Spool")
struct SpoolTests {
    func tempDir() -> String {
        let d = NSTemporaryDirectory() + "argus-spool-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func record(_ i: Int) -> SpoolRecord {
        SpoolRecord(
            deviceID: "box-\(i % 7)", bootId: "boot", receivedAt: Int64(i),
            frame: Array(#"{"type":"log","seq":\#(i),"ts":1,"level":"info","source":"s","text":"t"}"#.utf8))
    }

    @Test func recordsRoundTripAndATornTailIsCutOff() {
        var bytes: [UInt8] = []
        for i in 0..<3 { record(i).encode(into: &bytes) }
        let whole = bytes.count
        record(3).encode(into: &bytes)
        bytes.removeLast(5)  // a torn final write
        let (records, valid) = SpoolRecord.decodeAll(bytes)
        #expect(records == [record(0), record(1), record(2)])
        #expect(valid == whole)
        bytes[10] ^= 0xFF  // a flipped bit fails the checksum
        #expect(SpoolRecord.decodeAll(bytes).records.isEmpty)
    }

    @Test func theClockOffsetRoundTripsAndRecordsWithoutOneStillRead() {
        var bytes: [UInt8] = []
        var withOffset = record(1)
        withOffset.clockOffsetMs = -10_800_000
        var zero = record(2)
        zero.clockOffsetMs = 0
        record(0).encode(into: &bytes)  // as written before offsets existed
        withOffset.encode(into: &bytes)
        zero.encode(into: &bytes)
        let (records, valid) = SpoolRecord.decodeAll(bytes)
        #expect(records == [record(0), withOffset, zero] && valid == bytes.count)
        #expect(records[0].clockOffsetMs == nil && records[1].receivedAt == 1)
        // A record without an offset is encoded in the format written before offsets existed.
        func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        let r0 = record(0)
        let payload = le(0, 8) + le(5, 2) + Array("box-0".utf8) + le(4, 2) + Array("boot".utf8) + r0.frame
        let old = le(UInt64(payload.count), 4) + le(UInt64(CRC32.checksum(payload)), 4) + payload
        #expect(Array(bytes.prefix(old.count)) == old && old.count == r0.encodedSize)
        #expect(SpoolRecord.decodeAll(old).records == [r0])
    }

    @Test func crc32KnownVector() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func appendedRecordsAreDurableSealedAndSurviveARestart() async throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try Spool(configuration: .init(directory: dir, segmentBytes: 2000, sealAfter: .milliseconds(50)))
        spool.start()
        let acked = Counter()
        for wave in 0..<10 {
            for i in (wave * 10)..<(wave * 10 + 10) {
                #expect(spool.append(record(i)) { ok in if ok { acked.add() } } != .full)
            }
            try await waitUntil { acked.value == wave * 10 + 10 }
        }
        try await waitUntil { spool.sealedSegments().reduce(0) { $0 + $1.bytes } == spool.bytesOnDisk }
        spool.shutdown()
        #expect(spool.sealedSegments().count > 1, "segments seal once past their size")
        let reopened = try Spool(configuration: .init(directory: dir))
        let all = try reopened.sealedSegments().flatMap { try reopened.read($0) }
        #expect(all == (0..<100).map(record))
    }

    @Test func aSegmentLeftOpenByACrashIsRecoveredUpToItsLastWholeRecord() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var bytes: [UInt8] = []
        for i in 0..<4 { record(i).encode(into: &bytes) }
        bytes.removeLast(3)
        #expect(FileManager.default.createFile(atPath: dir + "/0000000000000007.open", contents: Data(bytes)))
        let spool = try Spool(configuration: .init(directory: dir))
        let segs = spool.sealedSegments()
        #expect(segs.map(\.sequence) == [7])
        #expect(try spool.read(segs[0]) == [record(0), record(1), record(2)])
        spool.remove(segs[0])
        #expect(spool.bytesOnDisk == 0)
    }

    @Test func aFullSpoolRefusesAndAskedToSlowDownBeforeThat() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let size = record(0).encodedSize
        let spool = try Spool(configuration: .init(directory: dir, maxBytes: size * 10, pendingHighWater: size * 100))
        // Not started: nothing is written, so everything stays queued.
        var results: [Spool.AppendResult] = []
        for i in 0..<11 { results.append(spool.append(record(i)) { _ in }) }
        #expect(results.prefix(9).allSatisfy { $0 == .queued })
        #expect(results[9] == .queuedSlowDown)
        #expect(results[10] == .full)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

func waitUntil(timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { Issue.record("condition not met in time"); return }
        try await Task.sleep(for: .milliseconds(10))
    }
}

@Suite("Telemetry applier")
struct TelemetryApplierTests {
    @Test func aResendInTheSameRoundIsAppliedOnceAndSegmentsAreRemoved() async throws {
        let dir = NSTemporaryDirectory() + "argus-applier-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try Spool(configuration: .init(directory: dir, sealAfter: .milliseconds(20)))
        spool.start()
        let frames = [
            #"{"type":"metrics","seq":1,"ts":3600000,"cpu":1}"#, #"{"type":"event","seq":2,"ts":3600001,"event":"tune","channel":"c"}"#,
            #"{"type":"metrics","seq":3,"ts":3600002,"cpu":3}"#,
            #"{"type":"command_status","seq":4,"ts":3600003,"ref":"j1","state":"failed","reason":"disk full"}"#,
        ]
        let done = Counter()
        for f in frames + frames {
            _ = spool.append(SpoolRecord(deviceID: "d", bootId: "b", receivedAt: 1, frame: Array(f.utf8))) { _ in done.add() }
        }
        try await waitUntil { done.value == 8 && spool.bytesPending == 0 }
        try await waitUntil { !spool.sealedSegments().isEmpty }
        let store = InMemoryTelemetryStore()
        let audience = AudienceState()
        let applier = TelemetryApplier(spool: spool, store: store, audience: audience, logger: .init(label: "t"))
        let r = try await applier.applyRound()
        #expect(r.messages == 8 && r.events == 2 && r.duplicateEvents == 1 && r.commandStatuses == 2)
        #expect(store.statuses.map(\.executionID) == ["j1|d", "j1|d"])
        #expect(store.statuses.first?.status == CommandStatus(ref: "j1", state: .failed, reason: "disk full"))
        #expect(store.buckets.count == 1)
        #expect(store.buckets.first?.samples.map(\.seq) == [1, 3])
        #expect(spool.sealedSegments().isEmpty && spool.bytesOnDisk == 0)
        #expect(audience.update { $0.trackedBoxes } == 1)
        spool.shutdown()
    }
}
