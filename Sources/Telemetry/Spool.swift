import ArgusSupport
import Foundation
import Metrics

#if canImport(Glibc)
import Glibc
#endif

/// Why the spool refused or failed.
public struct SpoolError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "spool: \(message)" }
}

/// The telemetry write-ahead spool: every accepted telemetry frame is appended here and
/// fsync'd before the box gets its `ack`. A separate applier moves sealed segments into the
/// store and deletes them, so the spool is both the durability point and the buffer that
/// absorbs a store outage (bounded by `maxBytes`). Segments left on disk by a crash or a stop
/// are applied after a restart.
///
/// One writer thread does all file I/O with group commit: every record queued while the
/// previous `fdatasync` ran is written and synced together, so the cost of a sync is shared.
// @unchecked: every mutable field is read and written under `cond` (an NSCondition, because
// the writer is a dedicated blocking thread that sleeps in it between group commits).
public final class Spool: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var directory: String
        /// The most bytes on disk plus queued; past it, appends are refused.
        public var maxBytes: Int
        /// A segment is sealed (handed to the applier) at this size...
        public var segmentBytes: Int
        /// ...or when it has held data this long.
        public var sealAfter: Duration
        /// Queued but unwritten bytes above which senders should stop reading.
        public var pendingHighWater: Int

        public init(
            directory: String, maxBytes: Int = 1 << 30, segmentBytes: Int = 4 << 20,
            sealAfter: Duration = .milliseconds(500), pendingHighWater: Int = 32 << 20
        ) {
            self.directory = directory
            self.maxBytes = maxBytes
            self.segmentBytes = segmentBytes
            self.sealAfter = sealAfter
            self.pendingHighWater = pendingHighWater
        }
    }

    /// What happened to an append.
    public enum AppendResult: Sendable, Equatable {
        /// Queued; the completion will say whether it became durable.
        case queued
        /// Queued, but the spool is filling: the sender should stop reading until resumed.
        case queuedSlowDown
        /// Refused: the spool is full. Nothing was queued and the completion will not be called.
        case full
    }

    /// A sealed segment, ready to apply.
    public struct Segment: Sendable, Equatable {
        public var sequence: UInt64
        public var path: String
        public var bytes: Int
    }

    public let configuration: Configuration
    /// Each group commit's write + fdatasync, as a Prometheus histogram in seconds.
    private let syncTimer = Metrics.Timer(label: "argus_spool_sync_seconds")
    private let cond = NSCondition()
    private var pending: [(SpoolRecord, @Sendable (Bool) -> Void)] = []
    private var pendingBytes = 0
    private var diskBytes = 0
    private var sealed: [Segment] = []
    private var nextSequence: UInt64 = 1
    private var stopping = false
    private var stopped = false
    private var slowedDown = false
    private var resumeHandler: (@Sendable () -> Void)?
    private var sealedHandler: (@Sendable () -> Void)?
    private var thread: Thread?
    // Writer-thread state.
    private var fd: Int32 = -1
    private var currentSequence: UInt64 = 0
    private var currentBytes = 0
    private var currentOpenedAt = ContinuousClock.now

    /// Opens the spool directory, sealing a segment that a previous run left open (cut back to
    /// its last whole record).
    public init(configuration: Configuration) throws {
        self.configuration = configuration
        try FileManager.default.createDirectory(atPath: configuration.directory, withIntermediateDirectories: true)
        let names = try FileManager.default.contentsOfDirectory(atPath: configuration.directory).sorted()
        for name in names {
            let path = configuration.directory + "/" + name
            guard let seq = UInt64(name.split(separator: ".").first ?? "") else { continue }
            if name.hasSuffix(".open") {
                let data = (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
                let valid = SpoolRecord.decodeAll(data).validBytes
                if valid == 0 {
                    unlink(path)
                } else {
                    truncate(path, off_t(valid))
                    let sealedPath = Self.path(configuration.directory, seq, sealed: true)
                    rename(path, sealedPath)
                    sealed.append(Segment(sequence: seq, path: sealedPath, bytes: valid))
                    diskBytes += valid
                }
            } else if name.hasSuffix(".seg") {
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                sealed.append(Segment(sequence: seq, path: path, bytes: size))
                diskBytes += size
            }
            nextSequence = max(nextSequence, seq + 1)
        }
        sealed.sort { $0.sequence < $1.sequence }
    }

    static func path(_ dir: String, _ seq: UInt64, sealed: Bool) -> String {
        let digits = String(seq)
        return dir + "/" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits + (sealed ? ".seg" : ".open")
    }

    /// Called (on the writer thread) when the spool drops back below its high-water marks.
    public func onResume(_ handler: @escaping @Sendable () -> Void) { cond.lock(); resumeHandler = handler; cond.unlock() }

    /// Called (on the writer thread) when a segment is sealed.
    public func onSealed(_ handler: @escaping @Sendable () -> Void) { cond.lock(); sealedHandler = handler; cond.unlock() }

    public func start() {
        let t = Thread { [self] in self.writerLoop() }
        t.name = "argus-spool"
        thread = t
        t.start()
    }

    /// Queues a record. `completion(true)` runs on the writer thread once it is on disk and
    /// synced; `completion(false)` if the write failed.
    public func append(_ record: SpoolRecord, completion: @escaping @Sendable (Bool) -> Void) -> AppendResult {
        let size = record.encodedSize
        cond.lock()
        defer { cond.unlock() }
        guard !stopping, diskBytes + pendingBytes + size <= configuration.maxBytes else { return .full }
        pending.append((record, completion))
        pendingBytes += size
        cond.signal()
        if pendingBytes > configuration.pendingHighWater || diskBytes + pendingBytes > configuration.maxBytes / 10 * 9 {
            slowedDown = true
            return .queuedSlowDown
        }
        return .queued
    }

    /// Sealed segments, oldest first.
    public func sealedSegments() -> [Segment] { cond.lock(); defer { cond.unlock() }; return sealed }

    /// Bytes on disk, sealed and open.
    public var bytesOnDisk: Int { cond.lock(); defer { cond.unlock() }; return diskBytes }
    /// Bytes queued and not yet written.
    public var bytesPending: Int { cond.lock(); defer { cond.unlock() }; return pendingBytes }

    /// Reads a sealed segment's records.
    public func read(_ segment: Segment) throws -> [SpoolRecord] {
        guard let data = FileManager.default.contents(atPath: segment.path) else {
            throw SpoolError(message: "cannot read \(segment.path)")
        }
        return SpoolRecord.decodeAll([UInt8](data)).records
    }

    /// Deletes a segment once the store holds its records.
    public func remove(_ segment: Segment) {
        unlink(segment.path)
        cond.lock()
        sealed.removeAll { $0.sequence == segment.sequence }
        diskBytes -= segment.bytes
        let resume = checkResume()
        cond.unlock()
        resume?()
    }

    /// Must hold the lock. Returns the handler to call (outside the lock) if senders may resume.
    private func checkResume() -> (@Sendable () -> Void)? {
        guard slowedDown, pendingBytes <= configuration.pendingHighWater / 2,
            diskBytes + pendingBytes <= configuration.maxBytes / 10 * 8
        else { return nil }
        slowedDown = false
        return resumeHandler
    }

    /// Writes what is queued, seals the open segment and stops the writer thread.
    public func shutdown() {
        cond.lock()
        stopping = true
        cond.broadcast()
        while !stopped && thread != nil { cond.wait() }
        cond.unlock()
    }

    private func writerLoop() {
        while true {
            cond.lock()
            while pending.isEmpty && !stopping {
                if currentBytes > 0 && ContinuousClock.now - currentOpenedAt >= configuration.sealAfter { break }
                _ = cond.wait(until: Date().addingTimeInterval(0.05))
            }
            let batch = pending
            pending = []
            let exiting = stopping && batch.isEmpty
            cond.unlock()

            if !batch.isEmpty { write(batch) }
            if currentBytes > 0
                && (currentBytes >= configuration.segmentBytes || exiting
                    || ContinuousClock.now - currentOpenedAt >= configuration.sealAfter)
            {
                seal()
            }
            if exiting {
                cond.lock()
                stopped = true
                cond.broadcast()
                cond.unlock()
                return
            }
        }
    }

    private func write(_ batch: [(SpoolRecord, @Sendable (Bool) -> Void)]) {
        var buffer: [UInt8] = []
        var bytes = 0
        for (r, _) in batch { r.encode(into: &buffer); bytes += r.encodedSize }
        var ok = true
        if fd < 0 {
            cond.lock(); currentSequence = nextSequence; nextSequence += 1; cond.unlock()
            fd = open(Self.path(configuration.directory, currentSequence, sealed: false), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            currentBytes = 0
            currentOpenedAt = .now
            ok = fd >= 0
        }
        if ok {
            let started = ContinuousClock.now
            defer { syncTimer.record(ContinuousClock.now - started) }
            var off = 0
            ok = buffer.withUnsafeBytes { p -> Bool in
                guard let base = p.baseAddress else { return true }  // nothing to write
                while off < p.count {
                    let n = Glibc.write(fd, base + off, p.count - off)
                    if n < 0 { if errno == EINTR { continue }; return false }
                    off += n
                }
                return true
            }
            ok = ok && fdatasync(fd) == 0
        }
        if ok { currentBytes += buffer.count }
        cond.lock()
        pendingBytes -= bytes
        if ok { diskBytes += buffer.count }
        let resume = checkResume()
        cond.unlock()
        for (_, done) in batch { done(ok) }
        resume?()
        if !ok, fd >= 0 {
            // A failed write may have left a partial record: seal what is valid and start anew.
            seal()
        }
    }

    private func seal() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
        let open = Self.path(configuration.directory, currentSequence, sealed: false)
        let done = Self.path(configuration.directory, currentSequence, sealed: true)
        rename(open, done)
        let dfd = Glibc.open(configuration.directory, O_RDONLY | O_DIRECTORY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
        cond.lock()
        sealed.append(Segment(sequence: currentSequence, path: done, bytes: currentBytes))
        let handler = sealedHandler
        cond.unlock()
        currentBytes = 0
        handler?()
    }
}
