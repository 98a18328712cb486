import STBProtocol
import Testing

@testable import Commands

private let now: Int64 = 1_700_000_000_000
private let day: Int64 = 86_400_000
private let planner = JobPlanner(maxTargets: 3, defaultTTLMillis: day)
private let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

private func body(_ s: String) throws -> [(String, JSONValue)] {
    guard case .object(let m) = try json(s) else { throw JobPlanError(.invalid, "test body is not an object", field: nil) }
    return m
}

private func request(_ s: String) throws -> JobRequest { try JobRequest(body: body(s)) }

private func plan(_ s: String, firmware: FirmwareImage? = nil, at: Int64 = now) throws -> JobPlan {
    try planner.plan(request(s), firmware: firmware, now: at)
}

private func invalid(_ message: String, _ field: String?) -> JobPlanError { JobPlanError(.invalid, message, field: field) }

private func image(_ status: FirmwareImage.Status = .available, models: [String] = [], url: String? = "https://hub/firmware/2.0.0") -> FirmwareImage {
    FirmwareImage(version: "2.0.0", models: models, size: 1000, sha256: sha.uppercased(), url: url, status: status)
}

@Suite("Job planner: request and targets")
struct JobPlannerTargetTests {
    @Test func aDeviceTargetIsAListOfOne() throws {
        let p = try plan(#"{"name":"reboot","target":{"device":"b1"}}"#)
        #expect(p.target == .device("b1"))
        #expect(p.scope == .list)
        #expect(p.targetJSON == (try json(#"{"device":"b1"}"#)))
        #expect(try planner.devices(p, found: [TargetBox(id: "b1", model: "m")]) == ["b1"])
    }

    @Test func aDevicesTargetDropsDuplicatesAndKeepsTheOrderNamed() throws {
        let p = try plan(#"{"name":"reboot","target":{"devices":["b2","b1","b2"]}}"#)
        #expect(p.target == .devices(["b2", "b1"]))
        #expect(p.scope == .list)
        // The store answers in its own order; the job keeps the operator's.
        #expect(try planner.devices(p, found: [TargetBox(id: "b1", model: "m"), TargetBox(id: "b2", model: "m")]) == ["b2", "b1"])
    }

    @Test func aTagTargetIsResolvedByTheStore() throws {
        let p = try plan(#"{"name":"reboot","target":{"tag":"lab"}}"#)
        #expect(p.target == .tag("lab"))
        #expect(p.target.storeQuery == TargetQuery(tag: "lab"))
        #expect(p.target.ids == nil)
        #expect(p.scope == .list)
        #expect(try planner.devices(p, found: [TargetBox(id: "x", model: "m"), TargetBox(id: "y", model: "m")]) == ["x", "y"])
    }

    @Test func aQueryTheSessionsCanAnswerIsAFleetJob() throws {
        let p = try plan(#"{"name":"reboot","target":{"query":{"model":"m1","firmware":"1.0","online":true}}}"#)
        let q = TargetQuery(model: "m1", firmware: "1.0", online: true)
        #expect(p.target == .query(q))
        #expect(p.scope == .fleet(q))
    }

    @Test(arguments: [#"{"tag":"lab"}"#, #"{"online":false}"#, #"{"model":"m1","tag":"lab"}"#])
    func aQueryOnTagsOrOfflineBoxesIsAList(query: String) throws {
        let p = try plan(#"{"name":"reboot","target":{"query":"# + query + "}}")
        #expect(p.scope == .list)
        #expect(p.target.storeQuery == (try JobTarget.parseQuery(json(query))))
    }

    @Test func allIsAFleetJobAndNeedsOneMatch() throws {
        let p = try plan(#"{"name":"reboot","target":{"all":true}}"#)
        #expect(p.target == .all)
        #expect(p.scope == .fleet(TargetQuery()))
        try planner.confirmFleet(p, anyMatch: true)
        #expect(throws: JobPlanError(.noDevices, "the target matches no devices", field: "target")) { try planner.confirmFleet(p, anyMatch: false) }
    }

    @Test(
        arguments: [
            (#"{"device":"a","tag":"b"}"#, "target must be an object with exactly one of device, devices, tag, query, all", "target"),
            (#"{}"#, "target must be an object with exactly one of device, devices, tag, query, all", "target"),
            (#""b1""#, "target must be an object with exactly one of device, devices, tag, query, all", "target"),
            (#"{"devices":[]}"#, "target.devices is empty", "target.devices"),
            (#"{"devices":["a","b","c","d"]}"#, "target.devices holds more than 3 devices; split it", "target.devices"),
            (#"{"devices":"a"}"#, "target.devices must be an array of device ids", "target.devices"),
            (#"{"devices":["a",""]}"#, "target.devices must hold device ids (strings)", "target.devices"),
            (#"{"devices":["a",7]}"#, "target.devices must hold device ids (strings)", "target.devices"),
            (#"{"device":""}"#, "target.device must be a device id", "target.device"),
            (#"{"device":42}"#, "target.device must be a device id", "target.device"),
            (#"{"tag":""}"#, "target.tag must be a tag", "target.tag"),
            (#"{"all":false}"#, "target.all must be true", "target.all"),
            (#"{"group":"x"}"#, "unknown target group; use one of device, devices, tag, query, all", "target.group"),
            (#"{"query":{}}"#, #"target.query must be an object with model, firmware, online and/or tag (use {"all": true} for every device)"#, "target.query"),
            (#"{"query":{"model":1}}"#, "target.query.model must be a string", "target.query.model"),
            (#"{"query":{"online":"yes"}}"#, "target.query.online must be true or false", "target.query.online"),
            (#"{"query":{"colour":"red"}}"#, "unknown field target.query.colour; allowed: model, firmware, online, tag", "target.query.colour"),
        ] as [(String, String, String)])
    func badTargetsAreRefusedNamingTheField(target: String, message: String, field: String) throws {
        #expect(throws: invalid(message, field)) { try plan(#"{"name":"reboot","target":"# + target + "}") }
    }

    @Test func requestsAreDecodedStrictly() throws {
        #expect(throws: invalid("unknown field colour; allowed: name, params, target, deadline, expiresInSec", "colour")) {
            try request(#"{"name":"reboot","target":{"device":"b1"},"colour":"red"}"#)
        }
        #expect(throws: invalid("name is required (a command name)", "name")) { try request(#"{"target":{"device":"b1"}}"#) }
        #expect(throws: invalid("name is required (a command name)", "name")) { try request(#"{"name":5}"#) }
        #expect(throws: invalid("target is required: one of device, devices, tag, query, all", "target")) { try plan(#"{"name":"reboot"}"#) }
        #expect(
            throws: invalid(
                #"name: unknown command "teleport"; known: reboot, factory_reset, firmware_update, message, reload_portal, set_config, log_pull, log_tail, diagnostics"#,
                "name")
        ) {
            try plan(#"{"name":"teleport","target":{"device":"b1"}}"#)
        }
        #expect(throws: invalid("params.force: unknown parameter force for reboot", "params.force")) {
            try plan(#"{"name":"reboot","params":{"force":true},"target":{"device":"b1"}}"#)
        }
    }

    @Test func namedBoxesTheStoreLacksOrRevokedAreRefused() throws {
        let p = try plan(#"{"name":"reboot","target":{"devices":["a","b","c"]}}"#)
        #expect(throws: JobPlanError(.unknownDevice, "unknown device: c", field: "target")) {
            try planner.devices(p, found: [TargetBox(id: "a", model: "m"), TargetBox(id: "b", model: "m")])
        }
        #expect(throws: JobPlanError(.unknownDevice, "unknown devices: a, c", field: "target")) {
            try planner.devices(p, found: [TargetBox(id: "b", model: "m")])
        }
        #expect(throws: JobPlanError(.unknownDevice, "device b is revoked", field: "target")) {
            try planner.devices(p, found: [TargetBox(id: "a", model: "m"), TargetBox(id: "b", model: "m", revoked: true), TargetBox(id: "c", model: "m")])
        }
        let many = JobTarget.devices((1...12).map { "d\($0)" })
        #expect(throws: JobPlanError(.unknownDevice, "unknown devices: d1, d2, d3, d4, d5, d6, d7, d8, d9, d10 and 2 more", field: "target")) {
            try many.boxes(found: [])
        }
    }

    @Test func aTargetMatchingNoneOrTooManyBoxesIsRefused() throws {
        let p = try plan(#"{"name":"reboot","target":{"tag":"lab"}}"#)
        #expect(throws: JobPlanError(.noDevices, "the target matches no devices", field: "target")) { try planner.devices(p, found: []) }
        let four = (1...4).map { TargetBox(id: "d\($0)", model: "m") }
        #expect(throws: JobPlanError(.tooManyDevices, "the target matches more than 3 devices; split it", field: "target")) {
            try planner.devices(p, found: four)
        }
        #expect(try planner.devices(p, found: Array(four.prefix(3))) == ["d1", "d2", "d3"])
    }
}

@Suite("Job planner: deadlines and defaults")
struct JobPlannerDeadlineTests {
    private let target = #""target":{"device":"b1"}"#

    @Test func theDefaultsAreADayFromTheInjectedNowAndTheCommandsOwn() throws {
        let p = try plan(#"{"name":"message","params":{"text":"hi"},"# + target + "}")
        #expect(p.createdAt == now)
        #expect(p.deadline == now + day)
        #expect(p.firmware == nil)
        #expect(p.command == Command(name: .message, params: [("text", .string("hi")), ("durationSec", .int(10))]))
        let later = try plan(#"{"name":"reboot","# + target + "}", at: now + 5000)
        #expect(later.createdAt == now + 5000)
        #expect(later.deadline == now + 5000 + day)
        let short = JobPlanner(maxTargets: 3, defaultTTLMillis: 60_000)
        #expect(try short.plan(request(#"{"name":"reboot","# + target + "}"), firmware: nil, now: now).deadline == now + 60_000)
    }

    @Test func expiresInSecCountsFromTheInjectedNow() throws {
        #expect(try plan(#"{"name":"reboot","expiresInSec":60,"# + target + "}").deadline == now + 60_000)
        #expect(try plan(#"{"name":"reboot","expiresInSec":60,"# + target + "}", at: 42).deadline == 60_042)
        #expect(try plan(#"{"name":"reboot","expiresInSec":1,"# + target + "}").deadline == now + 1000)
        #expect(try plan(#"{"name":"reboot","expiresInSec":2592000,"# + target + "}").deadline == now + 30 * day)
    }

    @Test func aDeadlineIsTakenAsGivenWithinThirtyDaysOfNow() throws {
        #expect(try plan(#"{"name":"reboot","deadline":\#(now + 1),"# + target + "}").deadline == now + 1)
        #expect(try plan(#"{"name":"reboot","deadline":\#(now + 30 * day),"# + target + "}").deadline == now + 30 * day)
        // 2023-11-14T22:13:20Z is `now`; an ISO time an hour on, with and without a fraction.
        #expect(try plan(#"{"name":"reboot","deadline":"2023-11-14T23:13:20Z","# + target + "}").deadline == now + 3_600_000)
        #expect(try plan(#"{"name":"reboot","deadline":"2023-11-14T23:13:20.250Z","# + target + "}").deadline == now + 3_600_250)
        // The same deadline is refused once the injected now has passed it.
        #expect(throws: invalid("deadline has already passed", "deadline")) {
            try plan(#"{"name":"reboot","deadline":"2023-11-14T23:13:20Z","# + target + "}", at: now + 3_600_000)
        }
    }

    @Test(
        arguments: [
            (#""deadline":1699999999000"#, "deadline has already passed", "deadline"),
            (#""deadline":1700000000000"#, "deadline has already passed", "deadline"),
            (#""deadline":1702592000001"#, "deadline must be within 30 days", "deadline"),
            (#""deadline":"2023-12-15T22:13:20Z""#, "deadline must be within 30 days", "deadline"),
            (#""deadline":"next tuesday""#, "deadline must be an ISO 8601 time or ms since the epoch", "deadline"),
            (#""deadline":1.5"#, "deadline must be an ISO 8601 time or ms since the epoch", "deadline"),
            (#""deadline":null"#, "deadline must be an ISO 8601 time or ms since the epoch", "deadline"),
            (#""deadline":1700000060000,"expiresInSec":60"#, "give deadline or expiresInSec, not both", "deadline"),
            (#""expiresInSec":0"#, "expiresInSec must be an integer from 1 to 2592000", "expiresInSec"),
            (#""expiresInSec":-60"#, "expiresInSec must be an integer from 1 to 2592000", "expiresInSec"),
            (#""expiresInSec":2592001"#, "expiresInSec must be an integer from 1 to 2592000", "expiresInSec"),
            (#""expiresInSec":1.5"#, "expiresInSec must be an integer from 1 to 2592000", "expiresInSec"),
            (#""expiresInSec":"60""#, "expiresInSec must be an integer from 1 to 2592000", "expiresInSec"),
        ] as [(String, String, String)])
    func badDeadlinesAreRefused(extra: String, message: String, field: String) throws {
        #expect(throws: invalid(message, field)) { try plan(#"{"name":"reboot","# + extra + "," + target + "}") }
    }

    @Test func theCommandIsCheckedBeforeTheDeadlineAndTheDeadlineBeforeTheTarget() throws {
        #expect(throws: invalid("params.durationSec: durationSec must be an integer from 1 to 600", "params.durationSec")) {
            try plan(#"{"name":"log_tail","params":{"durationSec":6000},"expiresInSec":0,"target":{}}"#)
        }
        #expect(throws: invalid("expiresInSec must be an integer from 1 to 2592000", "expiresInSec")) {
            try plan(#"{"name":"reboot","expiresInSec":0,"target":{}}"#)
        }
    }
}

@Suite("Job planner: the firmware catalogue")
struct JobPlannerFirmwareTests {
    private let update = #"{"name":"firmware_update","params":{"version":"2.0.0"},"target":{"device":"b1"}}"#

    @Test func onlyAVersionAloneNamesTheCatalogue() throws {
        #expect(try request(update).catalogueVersion == "2.0.0")
        #expect(try request(#"{"name":"firmware_update","params":{"version":"2","url":"http://x/y"}}"#).catalogueVersion == nil)
        #expect(try request(#"{"name":"firmware_update","params":{"version":2}}"#).catalogueVersion == nil)
        #expect(try request(#"{"name":"reboot","params":{"version":"2"}}"#).catalogueVersion == nil)
    }

    @Test func aCatalogueVersionIsFilledInFromTheEntry() throws {
        let p = try plan(update, firmware: image())
        #expect(
            p.command
                == Command(
                    name: .firmwareUpdate,
                    params: [
                        ("version", .string("2.0.0")), ("url", .string("https://hub/firmware/2.0.0")),
                        ("size", .int(1000)), ("sha256", .string(sha)),
                    ]))
        #expect(p.firmware == image())
        #expect(p.deadline == now + day)
    }

    @Test func anUnknownOrUnservableImageIsRefused() throws {
        #expect(
            throws: JobPlanError(
                .firmware, "firmware 2.0.0 is not in the catalogue; give version, url, size and sha256, or add it to /api/v1/firmware",
                field: "params.version")
        ) { try plan(update, firmware: nil) }
        #expect(throws: JobPlanError(.firmware, "firmware 2.0.0 has no image yet (upload it first)", field: "params.version")) {
            try plan(update, firmware: image(.awaitingUpload))
        }
        #expect(throws: JobPlanError(.firmware, "firmware 2.0.0 has no image yet (upload it first)", field: "params.version")) {
            try plan(update, firmware: image(.available, url: nil))
        }
        #expect(throws: JobPlanError(.firmware, "firmware 2.0.0 is unavailable: chunk 3 damaged; upload the image again", field: "params.version")) {
            try plan(update, firmware: image(.unavailable(problem: "chunk 3 damaged")))
        }
        #expect(throws: JobPlanError(.firmware, "firmware 2.0.0 is unavailable: its stored image is damaged; upload the image again", field: "params.version"))
        {
            try plan(update, firmware: image(.unavailable(problem: nil)))
        }
    }

    @Test func anImageForSomeModelsIsCheckedAgainstEveryTargetBox() throws {
        let fw = image(models: ["m1", "m2"])
        let p = try plan(#"{"name":"firmware_update","params":{"version":"2.0.0"},"target":{"devices":["a","b","c"]}}"#, firmware: fw)
        #expect(
            try planner.devices(p, found: [TargetBox(id: "a", model: "m1"), TargetBox(id: "b", model: "m2"), TargetBox(id: "c", model: "m1")])
                == ["a", "b", "c"])
        #expect(throws: JobPlanError(.wrongModel, "firmware 2.0.0 is for models m1, m2; 2 target devices are not (e.g. b, model x9)", field: "target")) {
            try planner.devices(p, found: [TargetBox(id: "a", model: "m1"), TargetBox(id: "b", model: "x9"), TargetBox(id: "c", model: "")])
        }
    }

    @Test func aFleetTargetIsAListWhenTheImageIsForSomeModels() throws {
        let all = #"{"name":"firmware_update","params":{"version":"2.0.0"},"target":{"all":true}}"#
        #expect(try plan(all, firmware: image(models: ["m1"])).scope == .list)
        #expect(try plan(all, firmware: image()).scope == .fleet(TargetQuery()))
        // Given in full, an update names no catalogue entry and its models are not checked.
        let full = #"{"name":"firmware_update","params":{"version":"9","url":"http://x/y","size":10,"sha256":"\#(sha)"},"target":{"all":true}}"#
        let p = try plan(full, firmware: image(models: ["m1"]))
        #expect(p.firmware == nil)
        #expect(p.scope == .fleet(TargetQuery()))
    }

    @Test func theCatalogueCommandIsValidatedLikeAnOperators() throws {
        let bad = FirmwareImage(version: "2.0.0", models: [], size: 0, sha256: sha, url: "https://hub/fw", status: .available)
        #expect(throws: invalid("params.size: size must be an integer from 1 to 8589934592", "params.size")) { try bad.updateCommand() }
    }
}
