import CMongoC
import Foundation
import Logging

/// Options for ``MongoCollection/watch(_:options:)``.
public struct WatchOptions: Sendable {
    /// Include the whole document on updates (`fullDocument: updateLookup`).
    public var fullDocument: Bool
    /// Resume after this token (an event's `_id`).
    public var resumeAfter: Document?
    /// How long one server round trip may wait for new events.
    public var maxAwaitMilliseconds: Int
    /// Events held for a slow consumer before the reading thread stops reading.
    public var bufferLimit: Int

    public init(fullDocument: Bool = true, resumeAfter: Document? = nil, maxAwaitMilliseconds: Int = 500, bufferLimit: Int = 1024) {
        self.fullDocument = fullDocument
        self.resumeAfter = resumeAfter
        self.maxAwaitMilliseconds = maxAwaitMilliseconds
        self.bufferLimit = bufferLimit
    }
}

extension MongoCollection {
    /// Opens a change stream on this collection. MongoDB needs a replica set for this (a
    /// single-node replica set is enough). The stream runs on a thread of its own; its
    /// buffer is bounded by `options.bufferLimit`, after which the thread waits for the
    /// consumer (the server keeps the events). Iteration ends by throwing if the stream fails;
    /// resume with the last event's `_id` as `resumeAfter`. Cancelling the consuming task or
    /// dropping the iterator stops the thread within `maxAwaitMilliseconds`.
    public func watch(_ pipeline: [Document] = [], options: WatchOptions = WatchOptions()) -> ChangeStream {
        let state = ChangeStream.State(limit: options.bufferLimit)
        let store = self.store, name = self.name, db = store.databaseName
        guard store.watches.add(state) else {
            state.finish(MongoStoreError(kind: .shutdown, operation: "watch", collection: name, message: "store is shut down"))
            return ChangeStream(state: state)
        }
        let thread = Thread {
            defer { store.watches.remove(state) }
            guard let client = store.popClient() else {
                state.finish(MongoStoreError(kind: .shutdown, operation: "watch", collection: name, message: "store is shut down"))
                return
            }
            defer { store.pushClient(client) }
            let coll = mongoc_client_get_collection(client, db, name)!
            defer { mongoc_collection_destroy(coll) }
            var opts: Document = ["maxAwaitTimeMS": .int(options.maxAwaitMilliseconds)]
            if options.fullDocument { opts["fullDocument"] = "updateLookup" }
            if let token = options.resumeAfter { opts["resumeAfter"] = .document(token) }
            let p: Document = ["pipeline": .array(pipeline.map { .document($0) })]
            let stream = p.withBSON { pb in opts.withBSON { ob in mongoc_collection_watch(coll, pb, ob) } }!
            defer { mongoc_change_stream_destroy(stream) }
            let err = argus_error_new()!
            defer { argus_error_free(err) }
            var doc: OpaquePointer? = nil
            while !state.isStopped {
                if mongoc_change_stream_next(stream, &doc), let doc {
                    if !state.push(Document(copying: doc)) { break }
                    continue
                }
                if mongoc_change_stream_error_document(stream, err, nil) {
                    state.finish(MongoStoreError.from(err, operation: "watch", collection: name))
                    return
                }
            }
            state.finish(nil)
        }
        thread.name = "argus-watch-\(name)"
        thread.start()
        return ChangeStream(state: state)
    }
}

/// The events of a change stream, as an `AsyncSequence` of raw change documents.
public struct ChangeStream: AsyncSequence, Sendable {
    public typealias Element = Document
    let state: State

    public func makeAsyncIterator() -> Iterator { Iterator(state: state, token: StopToken(state: state)) }

    /// Stops the reading thread. Iteration ends after events already buffered.
    public func stop() { state.stop() }

    public struct Iterator: AsyncIteratorProtocol {
        let state: State
        let token: StopToken
        public mutating func next() async throws -> Document? {
            try await withTaskCancellationHandler {
                try await state.next()
            } onCancel: { [state] in
                state.stop()
            }
        }
    }

    /// Stops the thread when the last iterator copy goes away.
    final class StopToken: Sendable {
        let state: State
        init(state: State) { self.state = state }
        deinit { state.stop() }
    }

    /// A bounded hand-off between the reading thread and one consumer.
    // @unchecked: every field is under `cond`, an NSCondition because the producer is a
    // dedicated blocking thread (mongoc_change_stream_next) that must sleep while it is full.
    final class State: @unchecked Sendable {
        private let cond = NSCondition()
        private var buffer: [Document] = []
        private var head = 0
        private var finished = false
        private var failure: Error?
        private var stopped = false
        private var waiter: CheckedContinuation<Document?, Error>?
        private let limit: Int

        init(limit: Int) { self.limit = Swift.max(1, limit) }

        var isStopped: Bool { cond.lock(); defer { cond.unlock() }; return stopped }

        /// Called by the thread; waits while the buffer is full. Returns false once stopped.
        func push(_ d: Document) -> Bool {
            cond.lock()
            if let w = waiter {
                waiter = nil
                cond.unlock()
                w.resume(returning: d)
                return true
            }
            while buffer.count - head >= limit && !stopped { cond.wait() }
            if stopped { cond.unlock(); return false }
            buffer.append(d)
            cond.unlock()
            return true
        }

        func finish(_ error: Error?) {
            cond.lock()
            finished = true
            if failure == nil { failure = error }
            let w = waiter
            waiter = nil
            let f = failure
            if w != nil { failure = nil }
            cond.unlock()
            if let w { if let f { w.resume(throwing: f) } else { w.resume(returning: nil) } }
        }

        func stop() {
            cond.lock()
            stopped = true
            cond.broadcast()
            let w = waiter
            waiter = nil
            cond.unlock()
            w?.resume(returning: nil)
        }

        func next() async throws -> Document? {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Document?, Error>) in
                cond.lock()
                if head < buffer.count {
                    let d = buffer[head]
                    head += 1
                    if head > 256 && head * 2 > buffer.count { buffer.removeFirst(head); head = 0 }
                    cond.broadcast()
                    cond.unlock()
                    c.resume(returning: d)
                } else if finished || stopped {
                    let f = failure
                    failure = nil
                    cond.unlock()
                    if let f { c.resume(throwing: f) } else { c.resume(returning: nil) }
                } else {
                    waiter = c
                    cond.unlock()
                }
            }
        }
    }
}
