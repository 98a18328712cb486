import ArgusStore
import ArgusTestSupport
import Foundation
import Logging
import MongoStore
import Recommend
import Testing

@testable import RecommendRuntime

/// The recommendation trainer and service against the database: factors imported as a version
/// and served, and a training that diverges (the solver's test hook) failing its version,
/// keeping the served model, and raising an alarm that the next good training clears.
@Suite("Recommendation import and divergence against the database")
struct RecommendRuntimeTests {
    /// Yesterday 18:00 UTC, inside the trainer's window.
    static let start = (Int64(Date().timeIntervalSince1970 * 1000) / 86_400_000 - 1) * 86_400_000 + 18 * 3_600_000

    /// Box b watches three channels of its group (b % 2) for 20, 30 and 40 minutes, then leaves.
    static func viewing(boxes: Int) -> [Document] {
        var docs: [Document] = []
        for b in 0..<boxes {
            let device = "box-\(b)"
            var t = start + Int64(b) * 60_000
            var seq: Int64 = 0
            func event(_ kind: String, _ channel: String?) {
                var d: Document = [
                    "_id": .string("\(device)|b|\(seq)"), "d": .string(device), "b": "b", "s": .int64(seq), "t": .date(Date(millis: t)),
                    "r": .date(Date(millis: t)), "o": 0, "e": .string(kind),
                ]
                if let channel { d["ch"] = .string(channel) }
                docs.append(d)
                seq += 1
            }
            for c in 0..<3 {
                event("tune", "g\(b % 2)-\((b + c) % 4)")
                t += Int64(20 + 10 * c) * 60_000
            }
            event("leave", nil)
        }
        return docs
    }

    static var settings: RecommendSettings {
        var s = RecommendSettings()
        s.parameters.factors = 4
        s.parameters.iterations = 4
        s.days = 3
        return s
    }

    @Test func aDivergingTrainingFailsItsVersionKeepsTheServedModelAndRaisesAnAlarm() async throws {
        try await withTestStore("recdiv") { store in
            _ = try await store.collection(Schema.events).insertMany(Self.viewing(boxes: 12))
            let logger = Logger(label: "t")
            let good = RecommendTrainer(store: store, node: "n1", settings: Self.settings, logger: logger)
            let v1 = try await good.trainOnce()
            #expect(try await good.store.currentVersion() == v1)
            var poisoned = Self.settings
            poisoned.parameters.poisonAfterIteration = 2
            let diverging = RecommendTrainer(store: store, node: "n1", settings: poisoned, logger: logger)
            let alarms = AlarmRepository(store: store)
            for attempt in 1...2 {
                await #expect(throws: ALSError.self) { try await diverging.trainOnce() }
                let failed = try #require(try await good.store.version(v1 + attempt))
                #expect(failed["failed"]?.stringValue?.contains("training diverged") == true && failed["promoted"]?.boolValue == false)
                #expect(try await good.store.currentVersion() == v1, "the served model stays")
                let progress = try #require(try await good.store.progress())
                #expect(progress.phase == .failed && progress.error?.contains("diverged") == true)
                // One alarm however often it diverges, naming the first failed version and the one served.
                let raised = try await alarms.list(state: .raised, rule: "recommend_training_diverged", limit: 10)
                #expect(raised.count == 1)
                #expect(raised.first?.details["version"] == "\(v1 + 1)" && raised.first?.details["serving"] == "\(v1)")
                #expect(raised.first?.details["error"]?.contains("not finite") == true)
            }
            let served = try await RecommendService(store: store).recommendations(device: "box-0", segment: nil, n: 2)
            #expect(served.modelVersion == v1 && !served.coldStart)
            // A training that does not diverge clears it.
            let v4 = try await good.trainOnce()
            #expect(v4 == v1 + 3)
            #expect(try await alarms.list(state: .raised, rule: "recommend_training_diverged", limit: 10).isEmpty)
            #expect(try await alarms.list(state: .cleared, rule: "recommend_training_diverged", limit: 10).count == 1)
        }
    }

    @Test func importedFactorsAreServedAsTheirScoresSayAndTrainingsDoNotReplaceThem() async throws {
        try await withTestStore("recimp") { store in
            _ = try await store.collection(Schema.events).insertMany(Self.viewing(boxes: 6))
            _ = try await store.collection(Schema.devices).insertMany([["_id": "box-0", "model": "m1"], ["_id": "box-1", "model": "m1"]])
            let trainer = RecommendTrainer(store: store, node: "n1", settings: Self.settings, logger: Logger(label: "t"))
            let trained = try await trainer.trainOnce()
            // Users: two boxes with viewing, one without; items: the eight channels and one never viewed.
            let users = ["box-0", "box-1", "elsewhere"]
            let items = (0..<2).flatMap { g in (0..<4).map { "g\(g)-\($0)" } } + ["new-ch"]
            var rng = Recommend.SplitMix64(seed: 4)
            let k = 3
            var csvUsers = "id,f0,f1,f2\n", csvItems = ""
            for u in users { csvUsers += u + (0..<k).map { _ in ",\(rng.nextUnitFloat() * 2 - 1)" }.joined() + "\n" }
            for i in items { csvItems += i + (0..<k).map { _ in ",\(rng.nextUnitFloat() * 2 - 1)" }.joined() + "\n" }
            let model = try FactorImport.model(
                users: FactorImport.csv(Array(csvUsers.utf8), file: "u.csv"), items: FactorImport.csv(Array(csvItems.utf8), file: "i.csv"))
            let report = try await trainer.importModel(model, source: "u.csv + i.csv", promote: true)
            #expect(report.version == trained + 1 && report.promoted && report.factors == k && report.boxes == 3 && report.items == 9)
            #expect(report.boxesWithViewing == 2 && report.unknownBoxes == 1 && report.unknownBoxSample == ["elsewhere"])
            #expect(report.unknownItems == 1 && report.unknownItemSample == ["new-ch"])
            #expect(try await trainer.store.currentVersion() == report.version)
            #expect(try await trainer.store.version(report.version)?["source"]?.stringValue == "import")

            // Brute force: every item by x_uᵀy_i, best first, what the box watched left out.
            func expected(_ user: Int, exclude: Set<String>, n: Int) -> [String] {
                let scored = items.indices.filter { !exclude.contains(items[$0]) }.map { i in
                    (i, (0..<k).reduce(Float(0)) { $0 + model.userFactors[user * k + $1] * model.itemFactors[i * k + $1] })
                }
                return scored.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(n).map { items[$0.0] }
            }
            let service = RecommendService(store: store)
            let box0 = try await service.recommendations(device: "box-0", segment: "m1", n: 3)
            let watched0: Set<String> = ["g0-0", "g0-1", "g0-2"]
            #expect(box0.modelVersion == report.version && !box0.coldStart)
            #expect(box0.items.map(\.channel) == expected(0, exclude: watched0, n: 3))
            #expect(box0.items.allSatisfy { $0.reason.kind == "because_you_watched" && watched0.contains($0.reason.channel ?? "") })
            let elsewhere = try await service.recommendations(device: "elsewhere", segment: nil, n: 4)
            #expect(!elsewhere.coldStart && elsewhere.items.map(\.channel) == expected(2, exclude: [], n: 4))
            #expect(elsewhere.items.allSatisfy { $0.reason.kind == "for_you" })
            // Not in the model: the popular channels of the viewing, its segment first.
            let cold = try await service.recommendations(device: "box-5", segment: "m1", n: 2)
            #expect(cold.coldStart && cold.items.first?.reason.kind == "popular_in_segment")

            // The hub's own training is stored but does not replace the imported model.
            let next = try await trainer.trainOnce()
            let nextPromoted = try await trainer.store.version(next)?["promoted"]?.boolValue
            #expect(next == report.version + 1 && nextPromoted == false)
            #expect(try await trainer.store.currentVersion() == report.version)
        }
    }
}
