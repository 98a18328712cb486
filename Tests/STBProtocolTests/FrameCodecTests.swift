import Foundation
import Testing

@testable import STBProtocol

/// The protocol examples in docs/protocol/examples, shared with the C agent's tests.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/protocol/examples")

    static func names(prefix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasPrefix(prefix) && $0.hasSuffix(".json") }.sorted()
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        var data = [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
        while let last = data.last, last == 0x0A { data.removeLast() }
        return data
    }
}

@Suite("Frame codec against the protocol examples")
struct FrameCodecTests {
    @Test func examplesExist() {
        #expect(Fixtures.names(prefix: "in-").count >= 2)
        #expect(Fixtures.names(prefix: "bad-").count >= 8)
        #expect(Fixtures.names(prefix: "out-").count >= 3)
    }

    /// Message types this hub's codec decodes (every `in-` example).
    static let implemented: Set<String> = [
        "hello", "ping", "metrics", "event-tune", "event-tune-timeshift", "log", "batch",
        "command-status-progress", "command-status-rejected", "recommendations",
    ]

    @Test(arguments: Fixtures.names(prefix: "in-") + Fixtures.names(prefix: "out-"))
    func everyExampleIsStrictJSONWithAnEnvelope(name: String) throws {
        let value = try JSONParser.parse(try Fixtures.bytes(name))
        guard case .string(let type)? = value["type"] else { Issue.record("\(name) has no type"); return }
        #expect(!type.isEmpty)
        if case .int(let seq)? = value["seq"] { #expect(seq >= 0) }
    }

    @Test(
        arguments: Fixtures.names(prefix: "in-").filter { name in
            implemented.contains { name == "in-\($0).json" }
        })
    func validInboundExamplesDecode(name: String) throws {
        let result = FrameCodec.decode(try Fixtures.bytes(name))
        guard case .success(let msg) = result else { Issue.record("\(name): \(result)"); return }
        switch msg {
        case .hello(let h):
            #expect(name == "in-hello.json")
            #expect(h.model == "argus-sim-1" && h.firmware == "1.4.2" && h.bootId == "5f0c2a9e7b1d4c3a")
            #expect(h.envelope == Envelope(type: "hello", id: "h-1", seq: 1, ts: 1795315579000))
        case .ping(let p):
            #expect(name == "in-ping.json")
            #expect(p.envelope.id == "p-7")
        case .recommendations(let r):
            #expect(name == "in-recommendations.json")
            #expect(r == RecommendationsRequest(envelope: Envelope(type: "recommendations", id: "r-3"), n: 3))
        case .telemetry(let env, let messages, let rejected):
            #expect(rejected.isEmpty)
            switch name {
            case "in-metrics.json":
                #expect(
                    messages == [
                        TelemetryMessage(
                            seq: 42, ts: 1795315639000,
                            body: .metrics(
                                MetricsSample(
                                    cpu: 23.5, mem: 61.2, tempC: 54, uptimeSec: 86400, rttMs: 12.4, bitrateKbps: 8200, underruns: 0, droppedFrames: 3)))
                    ])
            case "in-event-tune.json":
                #expect(messages == [TelemetryMessage(seq: 43, ts: 1795315640000, body: .event(ViewingEvent(kind: .tune, channel: "bbc-one.uk")))])
            case "in-event-tune-timeshift.json":
                #expect(
                    messages == [
                        TelemetryMessage(
                            seq: 47, ts: 1795315660000, body: .event(ViewingEvent(kind: .tune, channel: "bbc-one.uk", mode: .timeshift)))
                    ])
            case "in-log.json":
                #expect(
                    messages == [
                        TelemetryMessage(seq: 44, ts: 1795315641000, body: .log(LogLine(level: .warn, source: "player", text: "buffer underrun on bbc-one.uk")))
                    ])
            case "in-batch.json":
                #expect(env.id == "b-45")
                #expect(
                    messages == [
                        TelemetryMessage(seq: 45, ts: 1795315641500, body: .event(ViewingEvent(kind: .playError, channel: "bbc-one.uk", code: "E_DECODE"))),
                        TelemetryMessage(seq: 46, ts: 1795315641600, body: .log(LogLine(level: .error, source: "player", text: "decoder reset"))),
                    ])
            case "in-command-status-progress.json":
                #expect(
                    messages == [
                        TelemetryMessage(
                            seq: 90, ts: messages[0].ts, body: .commandStatus(CommandStatus(ref: "x-7f3b", state: .inProgress, progress: "verifying")))
                    ])
            case "in-command-status-rejected.json":
                guard case .commandStatus(let c) = messages.first?.body else { Issue.record("not a status"); return }
                #expect(c.state == .rejected && c.reason?.isEmpty == false)
            default:
                Issue.record("unexpected telemetry example \(name)")
            }
        }
    }

    /// `bad-<code>-<description>.json` must be rejected with `<code>`.
    @Test(arguments: Fixtures.names(prefix: "bad-"))
    func invalidExamplesAreRejectedWithTheirCode(name: String) throws {
        let expected = String(name.dropFirst(4).prefix(while: { $0 != "-" }))
        let code = try #require(ErrorCode(rawValue: expected), "fixture \(name) names an unknown error code")
        let result = FrameCodec.decode(try Fixtures.bytes(name))
        guard case .failure(let e) = result else { Issue.record("\(name) was accepted"); return }
        #expect(e.code == code, "\(name): \(e)")
        #expect(!e.reason.isEmpty)
    }

    @Test(arguments: [
        (#"{"type":"metrics","seq":1,"ts":1,"cpu":101}"#, ErrorCode.invalidField, "cpu"),
        (#"{"type":"metrics","seq":1,"ts":1,"cpu":"hot"}"#, .invalidField, "cpu"),
        (#"{"type":"metrics","ts":1}"#, .missingField, "seq"),
        (#"{"type":"metrics","seq":1}"#, .missingField, "ts"),
        (#"{"type":"event","seq":1,"ts":1,"event":"tune"}"#, .missingField, "channel"),
        (#"{"type":"event","seq":1,"ts":1,"event":"play_error","channel":"c"}"#, .missingField, "code"),
        (#"{"type":"event","seq":1,"ts":1,"event":"explode"}"#, .invalidField, "event"),
        (#"{"type":"event","seq":1,"ts":1,"event":"tune","channel":"c","mode":"rewind"}"#, .invalidField, "mode"),
        (#"{"type":"event","seq":1,"ts":1,"event":"tune","channel":"c","mode":1}"#, .invalidField, "mode"),
        (#"{"type":"event","seq":1,"ts":1,"event":"leave","mode":"live"}"#, .invalidField, "mode"),
        (#"{"type":"log","seq":1,"ts":1,"level":"loud","source":"s","text":"t"}"#, .invalidField, "level"),
        (#"{"type":"log","seq":1,"ts":1,"level":"info","source":"s"}"#, .missingField, "text"),
        (#"{"type":"batch","messages":[]}"#, .invalidField, "messages"),
        (#"{"type":"batch","messages":[{"type":"hello"}]}"#, .invalidField, "messages[0].type"),
    ])
    func invalidTelemetryNamesTheField(frame: String, code: ErrorCode, field: String) {
        guard case .failure(let e) = FrameCodec.decode(Array(frame.utf8)) else { Issue.record("accepted \(frame)"); return }
        #expect(e.code == code)
        #expect(e.field == field)
    }

    /// Protocol 1.1: `tune` may say how it is watched; a 1.0 box that says nothing is unchanged.
    @Test func aTuneCarriesItsModeAndATuneWithoutOneHasNone() throws {
        for (text, mode) in [("live", ViewingEvent.Mode.live), ("timeshift", .timeshift), ("catchup", .catchup)] {
            let frame = #"{"type":"event","seq":1,"ts":1,"event":"tune","channel":"c","mode":""# + text + #""}"#
            guard case .success(.telemetry(_, let m, _)) = FrameCodec.decode(Array(frame.utf8)) else {
                Issue.record("refused \(frame)"); continue
            }
            #expect(m == [TelemetryMessage(seq: 1, ts: 1, body: .event(ViewingEvent(kind: .tune, channel: "c", mode: mode)))])
        }
        let plain = #"{"type":"event","seq":1,"ts":1,"event":"tune","channel":"c"}"#
        guard case .success(.telemetry(_, let m, _)) = FrameCodec.decode(Array(plain.utf8)) else {
            Issue.record("refused \(plain)"); return
        }
        #expect(m == [TelemetryMessage(seq: 1, ts: 1, body: .event(ViewingEvent(kind: .tune, channel: "c")))])
    }

    @Test func anInvalidMessageInABatchIsRefusedAloneAndTheRestAccepted() throws {
        let frame =
            #"{"type":"batch","id":"b9","messages":[{"type":"log","seq":1,"ts":1,"level":"info","source":"s","text":"t"},"#
            + #"{"type":"metrics","seq":2,"ts":1,"mem":-1},{"type":"log","seq":3,"ts":1,"level":"info","source":"s","text":"é"},"#
            + #"{"type":"event","seq":4,"ts":1,"event":"tune"}]}"#
        guard case .success(.telemetry(_, let ok, let rejected)) = FrameCodec.decode(Array(frame.utf8)) else { Issue.record(); return }
        #expect(ok.map(\.seq) == [1, 3])
        #expect(rejected.map(\.field) == ["messages[1].mem", "messages[3].channel"])
        #expect(rejected.map(\.code) == [.invalidField, .missingField])
        #expect(rejected.allSatisfy { $0.ref == "b9" })
    }

    @Test func batchesAreCappedAndTextIsBounded() throws {
        let item = #"{"type":"log","seq":1,"ts":1,"level":"info","source":"s","text":"t"}"#
        let big = #"{"type":"batch","messages":["# + Array(repeating: item, count: FrameCodec.maxBatch + 1).joined(separator: ",") + "]}"
        guard case .failure(let e) = FrameCodec.decode(Array(big.utf8)) else { Issue.record(); return }
        #expect(e.field == "messages")
        let long = #"{"type":"log","seq":1,"ts":1,"level":"info","source":"s","text":""# + String(repeating: "a", count: 4097) + "\"}"
        guard case .failure(let e2) = FrameCodec.decode(Array(long.utf8)) else { Issue.record(); return }
        #expect(e2.field == "text")
        #expect(try JSONParser.parse(FrameCodec.ack(upTo: 46)) == JSONParser.parse(Fixtures.bytes("out-ack.json")))
    }

    /// Protocol 1.2: `n` defaults to the API's 10, is bounded like the API's, and the answer frame
    /// carries the API's answer as `result`.
    @Test func recommendationsRequestsAreBoundedAndTheAnswerMatchesTheExample() throws {
        guard case .success(.recommendations(let plain)) = FrameCodec.decode(Array(#"{"type":"recommendations"}"#.utf8)) else {
            Issue.record("not decoded")
            return
        }
        #expect(plain.n == 10 && plain.envelope.id == nil)
        for bad in [
            #"{"type":"recommendations","n":0}"#, #"{"type":"recommendations","n":101}"#, #"{"type":"recommendations","n":"5"}"#,
            #"{"type":"recommendations","n":2.5}"#,
        ] {
            guard case .failure(let e) = FrameCodec.decode(Array(bad.utf8)) else { Issue.record("accepted \(bad)"); continue }
            #expect(e.code == .invalidField && e.field == "n", "\(bad): \(e)")
        }
        guard case .success(.recommendations(let top)) = FrameCodec.decode(Array(#"{"type":"recommendations","id":"r","n":100}"#.utf8)) else {
            Issue.record("n = 100 refused")
            return
        }
        #expect(top.n == 100)
        let example = try JSONParser.parse(Fixtures.bytes("out-recommendations.json"))
        let result = try #require(example["result"])
        #expect(try JSONParser.parse(FrameCodec.recommendations(ref: "r-3", result: result)) == example)
    }

    @Test func refIsEchoedOnErrors() {
        guard case .failure(let e) = FrameCodec.decode(Array(#"{"type":"hello","id":"h-9"}"#.utf8)) else { Issue.record(); return }
        #expect(e.ref == "h-9")
        #expect(e.field == "model")
    }

    @Test func outboundFramesMatchTheExamples() throws {
        let welcome = try JSONParser.parse(try Fixtures.bytes("out-welcome.json"))
        let built = FrameCodec.welcome(
            ref: "h-1", serverTime: 1795315579012, session: "0b1c2d3e4f5a6b7c", node: "hub-a:8081",
            heartbeatSeconds: 30, limits: Limits(maxFrameBytes: 65536, maxBatch: 100, messagesPerSecond: 50))
        #expect(try JSONParser.parse(built) == welcome)
        #expect(try JSONParser.parse(FrameCodec.pong(ref: "p-7", serverTime: 1795315609004)) == JSONParser.parse(Fixtures.bytes("out-pong.json")))
        let err = FrameCodec.error(ProtocolError(.missingField, "model is required", field: "model", ref: "h-2"))
        #expect(try JSONParser.parse(err) == JSONParser.parse(Fixtures.bytes("out-error.json")))
    }
}

@Suite("JSON parser and writer")
struct JSONTests {
    @Test(arguments: [
        ("{}", JSONValue.object([])),
        ("[1,-2,3.5,1e3]", .array([.int(1), .int(-2), .double(3.5), .double(1000)])),
        (#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#, .string("a\"\\/\u{8}\u{c}\n\r\té😀")),
        ("  {\"k\" : [true,false,null]}  ", .object([("k", .array([.bool(true), .bool(false), .null]))])),
        ("9223372036854775807", .int(Int64.max)),
        ("9223372036854775808", .double(9223372036854775808)),
    ])
    func parsesValidJSON(text: String, expected: JSONValue) throws {
        #expect(try JSONParser.parse(Array(text.utf8)) == expected)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "tru", "\"abc", "\"\u{1}\"", "\"\\x\"", "\"\\ud800\"",
        "{\"a\" 1}", "[1] 2", "nul", "1e", "{1:2}", String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
    ])
    func rejectsInvalidJSON(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8() {
        do { _ = try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]); Issue.record("accepted") } catch { #expect(error.isUTF8) }
    }

    @Test func writerEscapes() throws {
        var w = JSONWriter()
        w.beginObject()
        w.string("s", "q\"b\\n\n\u{1}é")
        w.int("n", -5)
        w.bool("b", true)
        w.endObject()
        #expect(try JSONParser.parse(w.bytes) == .object([("s", .string("q\"b\\n\n\u{1}é")), ("n", .int(-5)), ("b", .bool(true))]))
    }

    @Test func closeCodesAreDistinct() {
        #expect(Set(CloseCode.allCases.map(\.rawValue)).count == CloseCode.allCases.count)
        #expect(CloseCode.allCases.allSatisfy { !$0.reason.isEmpty })
    }
}

@Suite("Command frames")
struct CommandFrameTests {
    @Test func theCommandFrameMatchesTheFirmwareExampleAndRoundTrips() throws {
        let bytes = FrameCodec.command(
            id: "x-7f3b", name: "firmware_update",
            params: [
                ("version", .string("1.5.0")), ("url", .string("http://127.0.0.1:8080/firmware/1.5.0.bin")), ("size", .int(1048576)),
                ("sha256", .string("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")),
            ], deadline: 1795319242000)
        #expect(bytes == (try Fixtures.bytes("out-command-firmware.json")))
    }

    @Test func nestedValuesAndEscapesAreWrittenAsStrictJSON() throws {
        let v = JSONValue.object([
            ("a", .array([.int(1), .double(2.5), .null, .bool(false)])), ("s", .string("q\"\n")),
            ("o", .object([("k", .object([]))])),
        ])
        var w = JSONWriter()
        w.raw(v)
        #expect(String(decoding: w.bytes, as: UTF8.self) == #"{"a":[1,2.5,null,false],"s":"q\"\n","o":{"k":{}}}"#)
        #expect(try JSONParser.parse(w.bytes) == v)
    }

    @Test(arguments: [
        (#"{"type":"command_status","seq":1,"ts":1,"ref":"j","state":"done"}"#, "state"),
        (#"{"type":"command_status","seq":1,"ts":1,"state":"failed"}"#, "ref"),
        (#"{"type":"command_status","seq":1,"ts":1,"ref":"j","state":"failed","result":[1]}"#, "result"),
        (#"{"type":"command_status","ts":1,"ref":"j","state":"failed"}"#, "seq"),
    ])
    func badStatusesNameTheirField(frame: String, field: String) {
        guard case .failure(let e) = FrameCodec.decode(Array(frame.utf8)) else { Issue.record("accepted \(frame)"); return }
        #expect(e.field == field)
    }

    @Test func aStatusInsideABatchIsRefusedAlone() {
        let frame =
            #"{"type":"batch","id":"b","messages":[{"type":"command_status","seq":1,"ts":1,"ref":"j","state":"failed"},{"type":"log","seq":2,"ts":1,"level":"info","source":"s","text":"t"}]}"#
        guard case .success(.telemetry(_, let msgs, let rejected)) = FrameCodec.decode(Array(frame.utf8)) else { Issue.record("not decoded"); return }
        #expect(msgs.count == 1 && rejected.first?.field == "messages[0].type")
    }
}
