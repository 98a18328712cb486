import Synchronization

/// Writes waiting for the store: the one bounded batch every writer of the hub uses
/// (presence, execution updates, audience counters, alarm changes).
///
/// A value type, so its rules are unit-tested without a store or a lock:
/// - **bounded**: past `limit` (counted in `weight` units, e.g. one per box of a job-wide
///   update), the oldest entries are dropped and the count of dropped units is returned, for
///   the owner to count and log;
/// - **coalescing** (optional): with a `key`, a new entry replaces a pending one of the same
///   key in place (the latest wins), so a storm of changes costs one write per key;
/// - **retry without loss of newer data**: ``putBack(_:)`` returns a failed batch to the
///   front, skipping entries whose key has a newer pending entry, and trims to the bound again.
public struct PendingBatch<Element> {
    public let limit: Int
    private let weigh: @Sendable (Element) -> Int
    private let key: (@Sendable (Element) -> String)?
    /// Entries in submission order; `nil` marks a slot whose entry was replaced or removed.
    private var slots: [Element?] = []
    private var head = 0
    private var index: [String: Int] = [:]
    /// Pending weight (units toward `limit`).
    public private(set) var weight = 0
    /// Pending entries.
    public private(set) var count = 0

    public init(limit: Int, weight: @escaping @Sendable (Element) -> Int = { _ in 1 }, key: (@Sendable (Element) -> String)? = nil) {
        precondition(limit > 0, "a pending batch needs a positive limit")
        self.limit = limit
        self.weigh = weight
        self.key = key
    }

    public var isEmpty: Bool { count == 0 }

    /// Adds an entry (replacing a pending one of the same key); returns the weight dropped to
    /// stay within `limit`.
    @discardableResult
    public mutating func append(_ e: Element) -> Int {
        let k = key?(e)
        if let k, let i = index[k], let old = slots[i] {
            weight += weigh(e) - weigh(old)
            slots[i] = e
        } else {
            if let k { index[k] = slots.count }
            slots.append(e)
            weight += weigh(e)
            count += 1
        }
        return trim()
    }

    @discardableResult
    public mutating func append<S: Sequence>(contentsOf s: S) -> Int where S.Element == Element {
        var dropped = 0
        for e in s { dropped += append(e) }
        return dropped
    }

    /// Takes everything pending, oldest first, and leaves the batch empty.
    public mutating func take() -> [Element] {
        let out = slots[head...].compactMap { $0 }
        slots = []
        head = 0
        index = [:]
        weight = 0
        count = 0
        return out
    }

    /// Returns a batch whose write failed to the front, oldest first. An entry whose key has a
    /// newer pending entry is skipped (the newer one supersedes it). Returns the weight dropped
    /// to stay within `limit`.
    @discardableResult
    public mutating func putBack(_ batch: [Element]) -> Int {
        guard !batch.isEmpty else { return 0 }
        let newer = take()
        var skipped = Set<String>()
        if let key { for e in newer { skipped.insert(key(e)) } }
        var dropped = 0
        for e in batch {
            if let k = key?(e), skipped.contains(k) { continue }
            dropped += append(e)
        }
        for e in newer { dropped += append(e) }
        return dropped
    }

    private mutating func trim() -> Int {
        var dropped = 0
        while weight > limit, head < slots.count {
            if let e = slots[head] {
                let w = weigh(e)
                weight -= w
                dropped += w
                count -= 1
                if let key { index[key(e)] = nil }
            }
            slots[head] = nil
            head += 1
        }
        // Compact once the dropped prefix is large, so the array does not grow forever.
        if head > 1024, head * 2 > slots.count {
            slots.removeFirst(head)
            if key != nil { index = index.mapValues { $0 - head } }
            head = 0
        }
        return dropped
    }
}

extension PendingBatch: Sendable where Element: Sendable {}

/// A ``PendingBatch`` shared between the threads that submit and the task that writes.
/// Drops past the bound are reported to `onDrop` (the owner counts them in `/metrics` and
/// logs them at a bounded rate).
public final class PendingWrites<Element: Sendable>: Sendable {
    private let state: Mutex<PendingBatch<Element>>
    private let onDrop: @Sendable (Int) -> Void

    public init(
        limit: Int, weight: @escaping @Sendable (Element) -> Int = { _ in 1 }, key: (@Sendable (Element) -> String)? = nil,
        onDrop: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        state = Mutex(PendingBatch(limit: limit, weight: weight, key: key))
        self.onDrop = onDrop
    }

    public func submit(_ e: Element) { report(state.withLock { $0.append(e) }) }
    public func submit<S: Sequence>(contentsOf s: S) where S.Element == Element { report(state.withLock { $0.append(contentsOf: s) }) }
    /// Everything pending, oldest first; the batch is left empty.
    public func take() -> [Element] { state.withLock { $0.take() } }
    /// A batch whose write failed goes back to the front (see ``PendingBatch/putBack(_:)``).
    public func putBack(_ batch: [Element]) { report(state.withLock { $0.putBack(batch) }) }
    public var count: Int { state.withLock { $0.count } }
    public var weight: Int { state.withLock { $0.weight } }

    private func report(_ dropped: Int) { if dropped > 0 { onDrop(dropped) } }
}
