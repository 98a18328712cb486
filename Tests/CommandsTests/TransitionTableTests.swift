import ArgusTestSupport
import Commands
import Testing

/// The transition table is the guard of every store write of an execution: every move the
/// machine makes must be in it, and nothing may leave a terminal state.
@Suite struct TransitionTableTests {
    @Test func noTerminalStateHasASuccessorAndEveryOpenStateCanFinish() {
        for from in ExecutionState.allCases where from.isTerminal {
            #expect(ExecutionState.allCases.allSatisfy { !ExecutionStateMachine.canMove(from: from, to: $0) })
        }
        for from in ExecutionState.allCases where !from.isTerminal {
            #expect(ExecutionStateMachine.canMove(from: from, to: .canceled))
            #expect(ExecutionStateMachine.canMove(from: from, to: .succeeded))
        }
        #expect(ExecutionStateMachine.sources(of: .expired) == [.queued])
        #expect(ExecutionStateMachine.sources(of: .timedOut) == [.sent, .inProgress])
        #expect(ExecutionStateMachine.sources(of: .queued) == [.sent])
    }

    /// Random runs of the machine (deliveries, reports, disconnects, ticks, cancels, random
    /// clock steps): every recorded move is in the table. Replay a failure by its seed.
    @Test func everyMoveTheMachineMakesIsInTheTable() {
        let t = ExecutionStateMachine.Timeouts(
            ackMillis: 1000, runMillis: 5000, maxAttempts: 3, retryBaseMillis: 300, retryCapMillis: 900)
        let reports: [BoxReport] = [.received, .inProgress, .succeeded, .failed, .rejected]
        for seed in UInt64(1)...400 {
            var rng = SplitMix64(seed: seed)
            var now: Int64 = 0
            let deadline: Int64? = rng.next() % 3 == 0 ? Int64(rng.next() % 20_000) : nil
            var m = ExecutionStateMachine(createdAt: 0, deadline: deadline, timeouts: t)
            for _ in 0..<40 {
                now += Int64(rng.next() % 2000)
                switch rng.next() % 6 {
                case 0: _ = m.deliver(now: now)
                case 1: _ = m.report(reports[Int(rng.next() % 5)], now: now, progress: "p\(rng.next() % 3)")
                case 2: _ = m.disconnected(now: now)
                case 3, 4: _ = m.tick(now: now)
                default: _ = m.cancel(now: now)
                }
            }
            let moves = zip(m.history, m.history.dropFirst())
            for (a, b) in moves {
                #expect(
                    ExecutionStateMachine.canMove(from: a.state, to: b.state),
                    "seed \(seed): \(a.state) → \(b.state) is not in the table")
            }
        }
    }
}
