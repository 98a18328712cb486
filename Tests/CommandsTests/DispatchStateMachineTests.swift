import ArgusTestSupport
import Commands
import Testing

/// The per-node dispatch bookkeeping, driven with plain millisecond times and fake sessions:
/// no database, no sockets, no clock.
@Suite struct DispatchStateMachineTests {
    typealias Session = FakeSession
    typealias TestJob = FakeJob

    typealias Machine = DispatchStateMachine<Session, TestJob>

    static let timeouts = ExecutionStateMachine.Timeouts(ackMillis: 1_000, runMillis: 10_000, maxAttempts: 3, retryBaseMillis: 500, retryCapMillis: 2_000)
    func machine(maxTracked: Int = 1000, finishedMemory: Int = 1000, maxHellos: Int = 1000) -> Machine {
        Machine(configuration: .init(timeouts: Self.timeouts, maxTracked: maxTracked, finishedMemory: finishedMemory, maxHellos: maxHellos))
    }

    let s1 = Session(id: "s1", deviceID: "box-1")
    let s2 = Session(id: "s2", deviceID: "box-2")

    @Test func announceDeliversOncePerSession() {
        var m = machine()
        let job = TestJob(id: "j1")
        #expect(m.observe(job: "j1", version: 1) == .first)
        let d = m.deliver(job, to: [("box-1", s1), ("box-2", s2)], now: 10)
        #expect(d.send == [s1, s2] && d.sent == ["box-1", "box-2"] && d.expired.isEmpty)
        #expect(m.trackedCount == 2)
        // The same job along another path (change stream, poll, hello lookup): nothing sent again.
        let again = m.deliver(job, to: [("box-1", s1), ("box-2", s2)], now: 20)
        #expect(again.send.isEmpty && again.sent.isEmpty)
    }

    @Test func jobVersionsAreDeduplicated() {
        var m = machine()
        #expect(m.observe(job: "j", version: 1) == .first)
        #expect(m.observe(job: "j", version: 1) == .stale)
        #expect(m.observe(job: "j", version: 2) == .update)
        #expect(m.observe(job: "j", version: 1) == .stale)
        #expect(m.observe(job: "k", version: 3) == .first)
    }

    @Test func aJobPastItsDeadlineExpiresInsteadOfBeingSent() {
        var m = machine()
        let d = m.deliver(TestJob(id: "old", deadline: 100), to: [("box-1", s1)], now: 100)
        #expect(d.send.isEmpty && d.expired == [Machine.key(job: "old", device: "box-1")])
        #expect(m.trackedCount == 0)
    }

    @Test func reportsDriveTheExecutionToItsEndAndMeasureTheRoundTrip() {
        var m = machine()
        _ = m.deliver(TestJob(id: "j"), to: [("box-1", s1)], now: 1_000)
        #expect(m.report(device: "box-1", ref: "j", .received, now: 1_250) == .open(roundTrip: 250))
        #expect(m.report(device: "box-1", ref: "j", .inProgress, progress: "50%", now: 1_300) == .open(roundTrip: nil))
        #expect(m.tracked[Machine.key(job: "j", device: "box-1")]?.machine.progress == "50%")
        #expect(m.report(device: "box-1", ref: "j", .succeeded, now: 2_000) == .finished(.succeeded, roundTrip: nil))
        #expect(m.trackedCount == 0)
        // A late repeat of the report, or of another box, is not followed here.
        #expect(m.report(device: "box-1", ref: "j", .failed, now: 2_100) == .untracked)
        #expect(m.report(device: "box-9", ref: "j", .received, now: 2_100) == .untracked)
    }

    @Test func aFinishedExecutionIsNotSentAgainInTheSameSession() {
        var m = machine()
        let job = TestJob(id: "j")
        _ = m.deliver(job, to: [("box-1", s1)], now: 0)
        _ = m.report(device: "box-1", ref: "j", .rejected, reason: "unknown", now: 5)
        // A hello lookup that raced the report finds the execution still open in the store.
        #expect(m.deliver(job, to: [("box-1", s1)], now: 10).send.isEmpty)
        // A new session of the same box is a new chance (the store decides whether it is open).
        let s1b = Session(id: "s1b", deviceID: "box-1")
        #expect(m.deliver(job, to: [("box-1", s1b)], now: 20).send == [s1b])
    }

    @Test func theFinishedMemoryIsBounded() {
        var m = machine(finishedMemory: 2)
        for j in ["a", "b", "c"] {
            _ = m.deliver(TestJob(id: j), to: [("box-1", s1)], now: 0)
            _ = m.report(device: "box-1", ref: j, .succeeded, now: 1)
        }
        // "a" was forgotten (oldest), "b" and "c" are remembered.
        #expect(m.deliver(TestJob(id: "a"), to: [("box-1", s1)], now: 2).send == [s1])
        #expect(m.deliver(TestJob(id: "c"), to: [("box-1", s1)], now: 2).send.isEmpty)
    }

    @Test func anUnconfirmedSendIsRetriedWithBackoffThenTimesOut() {
        var m = machine()
        let key = Machine.key(job: "j", device: "box-1")
        _ = m.deliver(TestJob(id: "j"), to: [("box-1", s1)], now: 0)
        #expect(m.tick(now: 999).requeued.isEmpty)
        // Unconfirmed after ackMillis: back to QUEUED, resent once the backoff has passed.
        let t1 = m.tick(now: 1_000)
        #expect(t1.requeued == [key] && t1.resend.isEmpty)
        let t2 = m.tick(now: 1_500)
        #expect(t2.resend.count == 1 && t2.resend[0].session == s1 && t2.resend[0].device == "box-1" && t2.resend[0].job.id == "j")
        // Second silence: backoff 1 s, third attempt, then the third silence times out.
        #expect(m.tick(now: 2_500).requeued == [key])
        #expect(m.tick(now: 3_500).resend.count == 1)
        let t = m.tick(now: 4_500)
        #expect(t.finished.count == 1 && t.finished[0].key == key && t.finished[0].state == .timedOut)
        #expect(t.finished[0].reason == "no confirmation after 3 deliveries")
        #expect(m.trackedCount == 0)
    }

    @Test func aRunningCommandThatStopsReportingTimesOut() {
        var m = machine()
        _ = m.deliver(TestJob(id: "j"), to: [("box-1", s1)], now: 0)
        _ = m.report(device: "box-1", ref: "j", .inProgress, now: 100)
        #expect(m.tick(now: 10_099).finished.isEmpty)
        let t = m.tick(now: 10_100)
        #expect(t.finished.map(\.state) == [.timedOut])
    }

    @Test func logTailRunsLongerBeforeItsRunTimeout() {
        var m = machine()
        _ = m.deliver(TestJob(id: "t", name: "log_tail"), to: [("box-1", s1)], now: 0)
        _ = m.report(device: "box-1", ref: "t", .inProgress, now: 0)
        #expect(m.tick(now: 600_000).finished.isEmpty)
        #expect(m.tick(now: 630_000).finished.map(\.state) == [.timedOut])
    }

    @Test func aBoxMovingToAnotherSessionGetsTheExecutionThere() {
        var m = machine()
        let job = TestJob(id: "j")
        let key = Machine.key(job: "j", device: "box-1")
        _ = m.deliver(job, to: [("box-1", s1)], now: 0)
        // The box reconnects (here or on another node) before the old session's close is seen.
        let s1b = Session(id: "s1b", deviceID: "box-1")
        #expect(m.deliver(job, to: [("box-1", s1b)], now: 10).send == [s1b])
        #expect(m.tracked[key]?.session == s1b)
        // The old session's end does not requeue what the new session now holds.
        #expect(m.sessionEnded(s1, now: 20).isEmpty)
        #expect(m.tracked[key]?.session == s1b)
        // The new session ends unconfirmed: back to QUEUED, no longer followed here.
        #expect(m.sessionEnded(s1b, now: 30) == [key])
        #expect(m.trackedCount == 0)
    }

    @Test func aConfirmedExecutionIsNotRequeuedWhenTheSessionEnds() {
        var m = machine()
        _ = m.deliver(TestJob(id: "j"), to: [("box-1", s1)], now: 0)
        _ = m.report(device: "box-1", ref: "j", .received, now: 5)
        #expect(m.sessionEnded(s1, now: 10).isEmpty)
        #expect(m.trackedCount == 0)
    }

    @Test func hellosQueueInOrderAndAreBounded() {
        var m = machine(maxHellos: 3)
        let sessions = (0..<5).map { Session(id: "s\($0)", deviceID: "b\($0)") }
        for s in sessions { m.sessionStarted(s) }
        #expect(m.hellosDropped == 2 && m.pendingHellos == 3)
        #expect(m.takeHellos(max: 2) == Array(sessions[2...3]))
        #expect(m.takeHellos(max: 2) == [sessions[4]])
        #expect(m.takeHellos(max: 2).isEmpty)
    }

    @Test func unmaterializedJobsAreRememberedBoundedOldestFirst() {
        var m = Machine(configuration: .init(timeouts: Self.timeouts, maxUnmaterialized: 2))
        m.remember(TestJob(id: "a", createdAt: 1))
        m.remember(TestJob(id: "b", createdAt: 2))
        m.remember(TestJob(id: "c", createdAt: 3))
        #expect(Set(m.unmaterialized.keys) == ["b", "c"])
        m.materialized("b")
        #expect(Set(m.unmaterialized.keys) == ["c"])
    }

    @Test func cancelStopsLogTailsAndForgetsTheJob() {
        var m = machine()
        _ = m.deliver(TestJob(id: "t", name: "log_tail"), to: [("box-1", s1)], now: 0)
        _ = m.deliver(TestJob(id: "r"), to: [("box-2", s2)], now: 0)
        m.remember(TestJob(id: "t"))
        #expect(m.cancel(job: "t", now: 5) == [s1])
        #expect(m.cancel(job: "r", now: 5).isEmpty, "a reboot cannot be stopped once sent")
        #expect(m.trackedCount == 0 && m.unmaterialized.isEmpty)
        #expect(m.report(device: "box-1", ref: "t", .succeeded, now: 6) == .untracked)
    }

    @Test func overTheMemoryLimitSendsStillHappenUnfollowed() {
        var m = machine(maxTracked: 1)
        let d = m.deliver(TestJob(id: "j"), to: [("box-1", s1), ("box-2", s2)], now: 0)
        #expect(d.send == [s1, s2] && m.trackedCount == 1)
    }
}
