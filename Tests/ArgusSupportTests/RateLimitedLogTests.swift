import ArgusTestSupport
import Synchronization
import Testing

@testable import ArgusSupport

@Suite("RateLimitedLog and Wakeup")
struct SupportTests {
    @Test("a burst gives one line, and the next line says how many were folded")
    func folds() async throws {
        let log = RateLimitedLog(every: .milliseconds(200))
        var lines: [Int] = []
        for _ in 0..<50 { log.event { lines.append($0) } }
        #expect(lines == [0])
        try await Task.sleep(for: .milliseconds(250))
        log.event { lines.append($0) }
        #expect(lines == [0, 49])
    }

    @Test("signals while the consumer is busy fold into one wake-up")
    func wakeupFolds() async {
        let w = Wakeup()
        for _ in 0..<10 { w.signal() }
        w.finish()
        var wakes = 0
        for await _ in w.signals { wakes += 1 }
        #expect(wakes == 1)
    }
}

@Suite("withDeadline")
struct DeadlineTests {
    /// A call that ignores cancellation and never returns, like a blocking store call on a
    /// frozen store.
    final class Stuck: Sendable {
        private let waiter = Mutex<CheckedContinuation<Void, Never>?>(nil)
        func call() async { await withCheckedContinuation { c in waiter.withLock { $0 = c } } }
        func release() {
            waiter.withLock {
                $0?.resume(); $0 = nil
            }
        }
    }

    @Test("the manual clock wakes a sleeper when advanced to its deadline")
    func manualClockWakes() async throws {
        let clock = ManualClock()
        let t = Task {
            try await clock.sleep(for: .seconds(5)); return clock.now.offset
        }
        while clock.sleeping == 0 { try await Task.sleep(for: .milliseconds(5)) }
        clock.advance(by: .seconds(5))
        #expect(try await t.value == .seconds(5))
    }

    @Test("a stuck call is abandoned at the deadline")
    func abandonsAStuckCall() async throws {
        let stuck = Stuck()
        await #expect(throws: DeadlineExceeded.self) {
            try await withDeadline(.milliseconds(200), operation: "presence flush") { await stuck.call() }
        }
        stuck.release()
    }

    @Test("a call that finishes in time returns its value")
    func returnsInTime() async throws {
        let v = try await withDeadline(.seconds(5), clock: ManualClock(), operation: "x") { 42 }
        #expect(v == 42)
    }
}
