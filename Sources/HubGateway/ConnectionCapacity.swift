import ArgusStore
import ArgusSupport
import Atomics

#if canImport(Glibc)
import Glibc
#endif

/// Counts the device gateway's open sockets against a cap derived from the process's
/// file-descriptor limit.
///
/// A socket past the cap is still read, so that it can be answered `503` with `Retry-After`
/// before any upgrade; a small `rejectBudget` of such sockets may be open at once, and a
/// socket past that is closed at once. Running out of descriptors is what kills a stock
/// server (a failing `accept`, then libdispatch failing inside Foundation), so the cap keeps
/// `reserved` descriptors free for the store pool, the operator API, files and the runtime.
package final class ConnectionCapacity: Sendable {
    /// Live WebSocket sessions allowed.
    package let cap: Int
    /// Extra sockets allowed only to be told 503.
    package let rejectBudget: Int
    private let open = ManagedAtomic<Int>(0)

    package init(cap: Int, rejectBudget: Int) {
        self.cap = cap
        self.rejectBudget = rejectBudget
    }

    package enum Admission: Equatable {
        /// Within the cap.
        case admit
        /// Over the cap: answer 503 and close.
        case overCapacity
        /// Far over the cap: close without reading.
        case drop
    }

    /// Counts a new socket. Every call must be paired with ``release()``, whatever the answer.
    package func acquire() -> Admission {
        let n = open.wrappingIncrementThenLoad(ordering: .relaxed)
        if n <= cap { return .admit }
        if n <= cap + rejectBudget { return .overCapacity }
        return .drop
    }

    package func release() { open.wrappingDecrement(ordering: .relaxed) }

    /// Sockets open now.
    package var current: Int { open.load(ordering: .relaxed) }

    /// The process's soft descriptor limit, raised to the hard limit first.
    package static func descriptorLimit() -> Int {
        var rl = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return 1024 }
        if rl.rlim_cur < rl.rlim_max {
            var raised = rl
            raised.rlim_cur = rl.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { rl = raised }
        }
        return rl.rlim_cur == rlim_t.max ? 1 << 20 : Int(rl.rlim_cur)
    }

    /// The session cap for a descriptor limit: everything but `reserved` and the reject budget.
    package static func derivedCap(descriptorLimit: Int, reserved: Int, rejectBudget: Int) -> Int {
        max(0, descriptorLimit - reserved - rejectBudget)
    }
}
