import ArgusSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MongoStore
import NIOCore
import Prometheus
import STBProtocol
import Telemetry
import Testing

@testable import ArgusStore
@testable import CommandRuntime
@testable import Hub
@testable import HubAPI
@testable import HubGateway

/// The operator API's routes and the presence writer against the real store (MONGODB_URI).
@Suite("Operator API against the database")
struct OperatorAPIDatabaseTests {
    struct Fixture {
        let store: MongoStore
        let deps: APIDependencies
        let adminToken: String
    }

    func withFixture(_ body: (Fixture) async throws -> Void) async throws {
        guard let uri = ProcessInfo.processInfo.environment["MONGODB_URI"] else {
            Issue.record("MONGODB_URI is not set: run through scripts/test")
            return
        }
        let db = "api_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let store = try MongoStore(uri: uri, database: db, threads: 2, logger: Logger(label: "t"))
        try await Schema.ensureIndexes(store)
        let tokens = TokenRepository(store: store)
        let admin = try await tokens.create(name: "root", role: .admin, createdBy: "test", now: Date())
        let gate = ReadinessGate()
        gate.open()
        let deps = APIDependencies(
            store: store, devices: DeviceRepository(store: store), tokens: tokens,
            audit: AuditLog(store: store, node: "n1", logger: Logger(label: "t")),
            registry: ConnectionRegistry(), capacity: ConnectionCapacity(cap: 10, rejectBudget: 1),
            gate: gate, node: "n1", metrics: PrometheusCollectorRegistry())
        do { try await body(Fixture(store: store, deps: deps, adminToken: admin.token)) } catch {
            try? await store.dropDatabase(); await store.shutdown(); throw error
        }
        try? await store.dropDatabase()
        await store.shutdown()
    }

    func json(_ b: ByteBuffer) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(b.readableBytesView)) as? [String: Any])
    }

    @Test func registerListGetRevokeAndAudit() async throws {
        try await withFixture { f in
            let app = Application(router: OperatorAPI.router(f.deps))
            try await app.test(.router) { client in
                let auth: HTTPFields = [.authorization: "Bearer \(f.adminToken)"]
                var secret = ""
                try await client.execute(
                    uri: "/api/v1/devices", method: .post, headers: auth,
                    body: ByteBuffer(string: #"{"id":"stb-1","model":"m1","tags":["a"]}"#)
                ) { r in
                    #expect(r.status == .created)
                    secret = try json(r.body)["secret"] as? String ?? ""
                }
                #expect(secret.count == 43)
                let stored = try await f.deps.devices.credentials("stb-1")
                #expect(stored == Secrets.hash(secret), "only the hash is stored")
                try await client.execute(uri: "/api/v1/devices?tag=a&online=false", method: .get, headers: auth) { r in
                    #expect(r.status == .ok)
                    let items = try json(r.body)["items"] as? [[String: Any]] ?? []
                    #expect(items.map { $0["id"] as? String } == ["stb-1"])
                    #expect(items.first?["secretHash"] == nil)
                }
                try await client.execute(uri: "/api/v1/devices/stb-1", method: .get, headers: auth) { r in
                    #expect(r.status == .ok)
                    let d = try json(r.body)
                    #expect(d["id"] as? String == "stb-1" && d["model"] as? String == "m1" && d["tags"] as? [String] == ["a"])
                    #expect(d["online"] as? Bool == false && d["revoked"] as? Bool == false)
                    #expect(d["secretHash"] == nil)
                }
                try await client.execute(uri: "/api/v1/devices/ghost", method: .get, headers: auth) { r in
                    #expect(r.status == .notFound)
                }
                try await client.execute(uri: "/api/v1/devices/stb-1/revoke", method: .post, headers: auth) { r in
                    #expect(r.status == .noContent)
                }
                #expect(try await f.deps.devices.credentials("stb-1") == nil)
                try await client.execute(uri: "/api/v1/devices/stb-1", method: .get, headers: auth) { r in
                    #expect(r.status == .ok)
                    let d = try json(r.body)
                    #expect(d["revoked"] as? Bool == true)
                }
                try await client.execute(uri: "/api/v1/devices/ghost/revoke", method: .post, headers: auth) { r in
                    #expect(r.status == .notFound)
                }
                try await client.execute(uri: "/api/v1/audit", method: .get, headers: auth) { r in
                    let items = try json(r.body)["items"] as? [[String: Any]] ?? []
                    let rows = items.map { "\($0["action"] ?? "") \($0["target"] ?? "") \($0["result"] ?? "")" }
                    #expect(rows == ["device.revoke ghost not_found", "device.revoke stb-1 ok", "device.register stb-1 ok"])
                    #expect(items.allSatisfy { $0["actor"] as? String == "root" && $0["role"] as? String == "admin" && $0["node"] as? String == "n1" })
                }
            }
        }
    }

    @Test func healthAndMetricsNeedNoTokenButTheAPIDoes() async throws {
        try await withFixture { f in
            let app = Application(router: OperatorAPI.router(f.deps))
            try await app.test(.router) { client in
                try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
                try await client.execute(uri: "/metrics", method: .get) { r in #expect(r.status == .ok) }
                try await client.execute(uri: "/api/v1/devices", method: .get) { r in #expect(r.status == .unauthorized) }
                try await client.execute(uri: "/api/v1/tokens", method: .get, headers: [.authorization: "Bearer nope"]) { r in
                    #expect(r.status == .unauthorized)
                }
            }
        }
    }

    @Test func presenceIsCoalescedAndOnlyTheCurrentSessionGoesOffline() async throws {
        try await withFixture { f in
            _ = try await f.deps.devices.register(id: "p1", model: "m", tags: [], secretHash: "sha256:x", now: Date())
            let w = PresenceWriter(store: f.store, node: "n1", logger: Logger(label: "t"))
            let t = Date()
            w.submit("p1", .online(session: "s1", connectedAt: t, remoteAddress: "1.2.3.4", model: "m", firmware: "f1", bootId: "b1"))
            w.submit("p1", .online(session: "s2", connectedAt: t, remoteAddress: "1.2.3.4", model: "m", firmware: "f2", bootId: "b2"))
            #expect(w.pendingCount == 1)
            try await w.flush()
            var d = try #require(try await f.deps.devices.get("p1"))
            #expect(d.online && d.session == "s2" && d.firmware == "f2" && d.node == "n1")
            w.submit("p1", .offline(session: "s1", lastSeen: Date()))  // a stale session
            try await w.flush()
            d = try #require(try await f.deps.devices.get("p1"))
            #expect(d.online, "a stale session's disconnect must not mark the box offline")
            #expect(try await w.markNodeOffline() == 1)
            d = try #require(try await f.deps.devices.get("p1"))
            #expect(!d.online && d.lastSeen != nil)
        }
    }

    @Test func aShortSessionsHelloIsKeptWhenItsOnlineWasCoalescedAway() async throws {
        try await withFixture { f in
            _ = try await f.deps.devices.register(id: "p2", model: "old", tags: [], secretHash: "sha256:x", now: Date())
            let w = PresenceWriter(store: f.store, node: "n1", logger: Logger(label: "t"))
            let t = Date()
            let info = SessionInfo(connectedAt: t, remoteAddress: "1.2.3.4", model: "new", firmware: "f9", bootId: "b9")
            w.submit("p2", .online(session: "s1", connectedAt: t, remoteAddress: "1.2.3.4", model: "new", firmware: "f9", bootId: "b9"))
            w.submit("p2", .offline(session: "s1", lastSeen: t.addingTimeInterval(1), info: info))  // before any flush
            #expect(w.pendingCount == 1)
            try await w.flush()
            var d = try #require(try await f.deps.devices.get("p2"))
            #expect(!d.online && d.model == "new" && d.firmware == "f9" && d.session == "s1")
            // A newer session online: an older session's late offline changes nothing.
            w.submit("p2", .online(session: "s2", connectedAt: t.addingTimeInterval(5), remoteAddress: nil, model: "new", firmware: "f10", bootId: "b10"))
            try await w.flush()
            w.submit(
                "p2",
                .offline(
                    session: "s0", lastSeen: Date(),
                    info: SessionInfo(connectedAt: t.addingTimeInterval(-5), remoteAddress: nil, model: "x", firmware: "x", bootId: "x")))
            try await w.flush()
            d = try #require(try await f.deps.devices.get("p2"))
            #expect(d.online && d.session == "s2" && d.firmware == "f10")
        }
    }

    @Test func metricSamplesAreAppendedOnceEvenWhenResentOverlapping() async throws {
        try await withFixture { f in
            let t = MongoTelemetryStore(store: f.store)
            func append(_ seqs: [Int64]) -> MetricBucketAppend {
                MetricBucketAppend(
                    deviceID: "m1", bootId: "b", hourStart: 3_600_000,
                    samples: seqs.map {
                        StoredSample(bootId: "b", seq: $0, ts: 3_600_000 + $0 * 1000, metrics: MetricsSample(cpu: Double($0)))
                    })
            }
            try await t.appendMetrics([append([1, 2, 3])])
            try await t.appendMetrics([append([4, 5])])
            try await t.appendMetrics([append([2, 3, 4, 6])])  // a resend overlapping what is stored
            try await t.appendMetrics([append([1, 2])])
            let doc = try #require(try await f.store.collection(Schema.metrics).findOne(["_id": "m1|b|3600000"]))
            let seqs = doc["samples"]?.arrayValue?.compactMap { $0.documentValue?["s"]?.intValue } ?? []
            #expect(seqs.sorted() == [1, 2, 3, 4, 5, 6])
            #expect(doc["last"]?.intValue == 6)
            let isNew = try await t.insertEvents([
                StoredEvent(deviceID: "m1", bootId: "b", seq: 9, ts: 1, receivedAt: 1, event: ViewingEvent(kind: .leave))
            ])
            let again = try await t.insertEvents([
                StoredEvent(deviceID: "m1", bootId: "b", seq: 10, ts: 1, receivedAt: 1, event: ViewingEvent(kind: .leave)),
                StoredEvent(deviceID: "m1", bootId: "b", seq: 9, ts: 1, receivedAt: 1, event: ViewingEvent(kind: .leave)),
            ])
            #expect(isNew == [true] && again == [true, false])
        }
    }

    @Test func alarmsHaveOneActivePerKeyAndOfflineBoxesRaiseAndClear() async throws {
        try await withFixture { f in
            let t = MongoTelemetryStore(store: f.store)
            let raise = AlarmChange.raise(key: "channel_outage|news", rule: "channel_outage", target: "news", details: ["share": "0.5"])
            try await t.applyAlarms([raise, raise], now: 1000)
            let repo = AlarmRepository(store: f.store)
            var list = try await repo.list(state: nil, rule: "channel_outage", limit: 10)
            #expect(list.count == 1 && list[0].state == .raised && list[0].details["share"] == "0.5")
            guard case .acknowledged(let acked) = try await repo.acknowledge(id: list[0].id, by: "ops", now: Date()) else { Issue.record(); return }
            #expect(acked.state == .acknowledged && acked.acknowledgedBy == "ops")
            try await t.applyAlarms([.clear(key: "channel_outage|news"), raise], now: 2000)
            list = try await repo.list(state: nil, rule: "channel_outage", limit: 10)
            #expect(Set(list.map(\.state)) == [.cleared, .raised], "a raise after a clear starts a new alarm")
            guard case .alreadyCleared = try await repo.acknowledge(id: list.first { $0.state == .cleared }!.id, by: "ops", now: Date()) else {
                Issue.record(); return
            }
            // Offline: a box silent for longer than the limit raises; coming back clears.
            _ = try await f.deps.devices.register(id: "gone", model: "m", tags: [], secretHash: "sha256:x", now: Date())
            _ = try await f.store.collection(Schema.devices).updateOne(["_id": "gone"], ["$set": ["lastSeen": .date(Date(timeIntervalSinceNow: -3600))]])
            let changes = try await repo.offlineChanges(after: 600, now: Date())
            #expect(changes.count == 1)
            try await t.applyAlarms(changes, now: 3000)
            #expect(try await repo.offlineChanges(after: 600, now: Date()).isEmpty, "already raised")
            _ = try await f.store.collection(Schema.devices).updateOne(["_id": "gone"], ["$set": ["online": true]])
            #expect(try await repo.offlineChanges(after: 600, now: Date()) == [.clear(key: "offline|gone")])
        }
    }

    @Test func tokensAreStoredHashedAndRevocable() async throws {
        try await withFixture { f in
            let created = try await f.deps.tokens.create(name: "grafana", role: .analyst, createdBy: "root", now: Date())
            #expect(try await f.deps.tokens.authenticate(created.token)?.role == .analyst)
            let raw = try await f.store.collection(Schema.tokens).find(["tokenId": .string(created.record.id)])
            #expect(raw.first?["_id"]?.stringValue == Secrets.hash(created.token))
            #expect(!raw.description.contains(created.token))
            #expect(try await f.deps.tokens.revoke(id: created.record.id, now: Date()))
            #expect(try await f.deps.tokens.revoke(id: created.record.id, now: Date()), "revoking twice is fine")
            #expect(try await f.deps.tokens.authenticate(created.token) == nil)
        }
    }
}
