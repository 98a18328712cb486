import STBProtocol
import Testing

@testable import Commands

func json(_ s: String) throws -> JSONValue { try JSONParser.parse(Array(s.utf8)) }

@Suite("Command catalogue")
struct CommandCatalogTests {
    @Test func theProtocolExamplesAreValidCommands() throws {
        let fw = try json(
            #"{"version":"1.5.0","url":"http://127.0.0.1:8080/firmware/1.5.0.bin","size":1048576,"sha256":"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}"#
        )
        let c = try Command.validate(name: "firmware_update", params: fw)
        #expect(c.name == .firmwareUpdate)
        #expect(JSONValue.object(c.params)["sha256"] == .string("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"))
        #expect(try Command.validate(name: "reboot", params: nil).params.isEmpty)
        #expect(try Command.validate(name: "reboot", params: .object([])).name == .reboot)
    }

    @Test func defaultsAreFilledIn() throws {
        #expect(JSONValue.object(try Command.validate(name: "message", params: json(#"{"text":"hi"}"#)).params)["durationSec"] == .int(10))
        #expect(JSONValue.object(try Command.validate(name: "log_pull", params: nil).params)["lines"] == .int(500))
    }

    @Test(
        arguments: [
            ("teleport", nil, "name"),
            ("reboot", #"{"force":true}"#, "params.force"),
            ("firmware_update", #"{"version":"1","url":"http://x/y","size":10}"#, "params.sha256"),
            ("firmware_update", #"{"version":"1","url":"ftp://x/y","size":10,"sha256":"00"}"#, "params.url"),
            ("firmware_update", #"{"version":"1","url":"http://x/y","size":10,"sha256":"zz"}"#, "params.sha256"),
            (
                "firmware_update", #"{"version":"1","url":"http://x/y","size":0,"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}"#,
                "params.size"
            ),
            ("message", #"{}"#, "params.text"),
            ("message", #"{"text":"x","durationSec":0}"#, "params.durationSec"),
            ("set_config", #"{"values":{"rootPassword":"x"}}"#, "params.values.rootPassword"),
            ("set_config", #"{"values":{"logLevel":"loud"}}"#, "params.values.logLevel"),
            ("set_config", #"{"values":{}}"#, "params.values"),
            ("log_pull", #"{"lines":6000}"#, "params.lines"),
            ("log_tail", #"{}"#, "params.durationSec"),
            ("log_tail", #"{"durationSec":601}"#, "params.durationSec"),
            ("diagnostics", #"[]"#, "params"),
        ] as [(String, String?, String)])
    func badCommandsAreRefusedNamingTheField(name: String, params: String?, field: String) throws {
        let p = try params.map(json)
        #expect(throws: CommandError.self) { try Command.validate(name: name, params: p) }
        do { _ = try Command.validate(name: name, params: p) } catch { #expect(error.field == field, "\(error)") }
    }
}

@Suite("Execution state machine")
struct ExecutionStateMachineTests {
    let t = ExecutionStateMachine.Timeouts(ackMillis: 1000, runMillis: 10_000, maxAttempts: 3, retryBaseMillis: 500, retryCapMillis: 800)

    @Test func happyPathIsTimestamped() {
        var m = ExecutionStateMachine(createdAt: 0, deadline: nil, timeouts: t)
        #expect(m.deliver(now: 10) == .send(attempt: 1))
        #expect(m.report(.received, now: 20) == .none)
        #expect(m.report(.inProgress, now: 30, progress: "downloading") == .none)
        #expect(m.report(.inProgress, now: 40, progress: "verifying") == .none)
        #expect(m.report(.succeeded, now: 50) == .finished(.succeeded))
        #expect(m.history.map(\.state) == [.queued, .sent, .inProgress, .succeeded])
        #expect(m.history.map(\.at) == [0, 10, 30, 50])
        #expect(m.progress == "verifying")
        #expect(m.report(.failed, now: 60) == .none, "nothing leaves a terminal state")
        #expect(m.state == .succeeded)
    }

    @Test func failureAndRejectionCarryTheBoxsReason() {
        var a = ExecutionStateMachine(createdAt: 0, deadline: nil, timeouts: t)
        _ = a.deliver(now: 0)
        #expect(a.report(.failed, now: 5, reason: "checksum mismatch") == .finished(.failed))
        #expect(a.reason == "checksum mismatch")
        var r = ExecutionStateMachine(createdAt: 0, deadline: nil, timeouts: t)
        _ = r.deliver(now: 0)
        #expect(r.report(.rejected, now: 5, reason: "unknown command") == .finished(.rejected))
        #expect(r.state == .rejected && r.reason == "unknown command")
    }

    @Test func unconfirmedDeliveriesAreRetriedWithBackoffThenTimeOut() {
        var m = ExecutionStateMachine(createdAt: 0, deadline: nil, timeouts: t)
        #expect(m.deliver(now: 0) == .send(attempt: 1))
        #expect(m.tick(now: 999) == .none)
        #expect(m.tick(now: 1000) == .none)
        #expect(m.state == .queued && m.notBefore == 1500)
        #expect(m.deliver(now: 1400) == .none, "backing off")
        #expect(m.deliver(now: 1500) == .send(attempt: 2))
        _ = m.tick(now: 2500)
        #expect(m.notBefore == 2500 + 800, "the delay doubles up to its cap")
        #expect(m.deliver(now: 3300) == .send(attempt: 3))
        #expect(m.tick(now: 4300) == .finished(.timedOut))
        #expect(m.state == .timedOut && m.attempts == 3)
    }

    @Test func aConfirmedButSilentExecutionTimesOut() {
        var m = ExecutionStateMachine(createdAt: 0, deadline: nil, timeouts: t)
        _ = m.deliver(now: 0)
        _ = m.report(.inProgress, now: 100)
        #expect(m.tick(now: 10_099) == .none)
        #expect(m.tick(now: 10_100) == .finished(.timedOut))
    }

    @Test func queuedPastItsDeadlineExpires() {
        var m = ExecutionStateMachine(createdAt: 0, deadline: 5000, timeouts: t)
        #expect(m.tick(now: 4999) == .none)
        #expect(m.tick(now: 5000) == .finished(.expired))
        var late = ExecutionStateMachine(createdAt: 0, deadline: 5000, timeouts: t)
        #expect(late.deliver(now: 6000) == .finished(.expired), "a box that reconnects too late does not get it")
    }

    @Test func aDisconnectBeforeConfirmationRequeuesAfterItKeepsRunning() {
        var m = ExecutionStateMachine(createdAt: 0, deadline: nil, timeouts: t)
        _ = m.deliver(now: 0)
        _ = m.disconnected(now: 10)
        #expect(m.state == .queued)
        #expect(m.deliver(now: 20) == .send(attempt: 2))
        _ = m.report(.received, now: 30)
        _ = m.disconnected(now: 40)
        #expect(m.state == .sent, "a confirmed execution waits for the box's report")
    }

    @Test func cancelIsIdempotentAndTellsTheBoxWhenItHasIt() {
        var q = ExecutionStateMachine(createdAt: 0, deadline: nil, timeouts: t)
        #expect(q.cancel(now: 1) == .finished(.canceled))
        #expect(q.cancel(now: 2) == .none)
        #expect(q.history.count == 2)
        var s = ExecutionStateMachine(createdAt: 0, deadline: nil, timeouts: t)
        _ = s.deliver(now: 0)
        _ = s.report(.inProgress, now: 1)
        #expect(s.cancel(now: 2) == .sendCancel)
        #expect(s.state == .canceled)
        #expect(s.report(.succeeded, now: 3) == .none)
        var done = ExecutionStateMachine(createdAt: 0, deadline: nil, timeouts: t)
        _ = done.deliver(now: 0)
        _ = done.report(.succeeded, now: 1)
        #expect(done.cancel(now: 2) == .none && done.state == .succeeded)
    }

    @Test func terminalStatesAreExactlyTheFinalOnes() {
        #expect(ExecutionState.allCases.filter { !$0.isTerminal } == [.queued, .sent, .inProgress])
    }
}
