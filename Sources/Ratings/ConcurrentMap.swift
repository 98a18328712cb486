import Dispatch
import Synchronization

/// `transform` applied to every element of `items`, in order, on every core (`DispatchQueue.concurrentPerform`):
/// a query's rows, or its channels' reach, are independent of one another. The calling thread works too and
/// waits; fewer than `2 × minimumPerTask` items run on it alone.
package func concurrentMap<T: Sendable, R: Sendable>(_ items: [T], minimumPerTask: Int = 4, _ transform: (T) -> R) -> [R] {
    let tasks = min(max(1, items.count / max(1, minimumPerTask)), 8)
    if tasks <= 1 { return items.map(transform) }
    let results = Mutex<[R?]>(Array(repeating: nil, count: items.count))
    withoutActuallyEscaping(transform) { transform in
        let work = UncheckedSendable(transform)
        DispatchQueue.concurrentPerform(iterations: tasks) { t in
            var local: [(Int, R)] = []
            for i in stride(from: t, to: items.count, by: tasks) { local.append((i, work.value(items[i]))) }
            results.withLock { r in for (i, v) in local { r[i] = v } }
        }
    }
    return results.withLock { $0.compactMap { $0 } }
}

/// Carries a non-`Sendable` closure into `concurrentPerform`, which calls it only while the caller waits (and the
/// closure only reads what it captured).
private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
