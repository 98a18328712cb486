import Foundation
import Hummingbird
import HummingbirdTesting
import MongoStore
import NIOCore
import Testing

@testable import ArgusStore
@testable import HubAPI

/// Stored documents of the wrong shape (written by hand or by an older version): a list
/// leaves them out, counted, and pages on past them; reading one by id is a 500 naming the
/// collection, the `_id` and the field.
extension OperatorAPIDatabaseTests {
    @Test func aCorruptDocumentIsSkippedInListsAndNamedWhenReadAlone() async throws {
        try await withFixture { f in
            for id in ["stb-1", "stb-3"] { _ = try await f.deps.devices.register(id: id, model: "m1", tags: [], secretHash: "h", now: Date()) }
            try await f.store.collection(Schema.devices).insertOne(["_id": "stb-2", "model": .int32(7), "tags": [], "online": false])
            _ = try await f.store.collection(Schema.alarms).insertMany([
                ["_id": "a1", "key": "k1", "rule": "offline", "target": "x", "state": "raised", "raisedAt": .date(Date()), "details": [:]],
                ["_id": "a2", "key": "k2", "rule": "offline", "target": "y", "state": "snoozed", "raisedAt": .date(Date()), "details": [:]],
            ])
            try await f.store.collection(Schema.audit).insertOne(["at": "yesterday", "actor": "hand", "action": "x"])
            await f.deps.audit.record(Principal(tokenId: "t", name: "root", role: .admin), action: "device.register", target: "stb-1", result: "ok")
            let app = Application(router: OperatorAPI.router(f.deps))
            try await app.test(.router) { client in
                let auth: HTTPFields = [.authorization: "Bearer \(f.adminToken)"]
                try await client.execute(uri: "/api/v1/devices?limit=2", method: .get, headers: auth) { r in
                    #expect(r.status == .ok)
                    let body = try json(r.body)
                    #expect((body["items"] as? [[String: Any]] ?? []).map { $0["id"] as? String } == ["stb-1"])
                    #expect(body["nextCursor"] as? String == "stb-2", "the cursor moves past the skipped box")
                }
                try await client.execute(uri: "/api/v1/devices?limit=2&cursor=stb-2", method: .get, headers: auth) { r in
                    let items = try json(r.body)["items"] as? [[String: Any]] ?? []
                    #expect(items.map { $0["id"] as? String } == ["stb-3"])
                }
                try await client.execute(uri: "/api/v1/devices/stb-2", method: .get, headers: auth) { r in
                    #expect(r.status == .internalServerError)
                    let message = (try json(r.body)["error"] as? [String: Any])?["message"] as? String ?? ""
                    #expect(message.contains(#"devices/_id=stb-2: field "model": expected String, found int32"#))
                }
                try await client.execute(uri: "/api/v1/alarms", method: .get, headers: auth) { r in
                    #expect(r.status == .ok)
                    let items = try json(r.body)["items"] as? [[String: Any]] ?? []
                    #expect(items.map { $0["id"] as? String } == ["a1"])
                }
                try await client.execute(uri: "/api/v1/audit", method: .get, headers: auth) { r in
                    #expect(r.status == .ok)
                    let items = try json(r.body)["items"] as? [[String: Any]] ?? []
                    #expect(!items.isEmpty && items.allSatisfy { $0["actor"] as? String == "root" })
                }
            }
            #expect(f.deps.devices.decodeFailures.reported == 2)  // once in the first page, once read alone
            #expect(f.deps.audit.decodeFailures.reported == 1)

            // Jobs and executions: the pages skip, the single reads throw the typed error.
            let repo = CommandRepository(store: f.store)
            let good = Job(
                id: "c0002", name: "reboot", params: [], target: .object([]), devices: ["stb-1"], createdAt: 1, deadline: 2, createdBy: "t", node: "n")
            try await repo.insert(good)
            var bad = good.document
            bad["_id"] = "c0001"
            bad["createdAt"] = .int64(1)
            try await repo.jobs.insertOne(bad)
            let page = try await repo.jobRecords(before: nil, limit: 2)
            #expect(page.items.map(\.id) == ["c0002"] && page.last == "c0001")
            let e = await #expect(throws: BSONDecodingError.self) { try await repo.jobRecord("c0001") }
            #expect(e?.description == #"jobs/_id=c0001: field "createdAt": expected Date (a BSON datetime), found int64"#)
            try await repo.materialize(good)
            try await repo.executions.insertOne(["_id": "c0002|stb-0", "job": "c0002", "device": "stb-0", "state": "LOST"])
            let executions = try await repo.executionRecords(job: "c0002", state: nil, after: nil, limit: 10)
            #expect(executions.items.map(\.device) == ["stb-1"])
            await #expect(throws: BSONDecodingError.self) { try await repo.executionRecord(job: "c0002", device: "stb-0") }
            #expect(repo.executionDecodeFailures.reported == 2)
        }
    }
}
