import ArgusStore
import Foundation
import MongoStore
import RatingsRuntime
import Recommend

/// Where recommendation models live (docs/storage.md, "Recommendations"):
///
/// - `recommend_models`: one document per trained version: when, the parameters, the evaluation
///   figures (ALS and popularity on a time holdout), whether it was promoted, the item ids, the
///   popular items overall and per model segment (the cold-start answer);
/// - `recommend_blobs`: a version's binary parts in chunks under 4 MiB (user ids, user and item
///   factors as little-endian `Float32`, each box's most-watched items);
/// - `recommend_state`: the trainer's lease, the promoted version, a pending training request and
///   the progress of the training under way.
package struct RecommendStore: Sendable {
    package static let modelsName = "recommend_models"
    package static let blobsName = "recommend_blobs"
    package static let stateName = "recommend_state"
    static let chunkBytes = 4 << 20

    package let models: MongoCollection
    package let blobs: MongoCollection
    package let state: MongoCollection

    package init(store: MongoStore) {
        models = store.collection(Self.modelsName)
        blobs = store.collection(Self.blobsName)
        state = store.collection(Self.stateName)
    }

    package func createIndexes() async throws {
        try await blobs.createIndexes([IndexModel(name: "version_part_i", keys: ["version": 1, "part": 1, "i": 1], unique: true)])
    }

    // MARK: - Lease, request, progress

    package var lease: StoreLease { StoreLease(state, id: "trainer") }

    /// Asks the lease holder to train now; returns false when a request is already pending.
    package func requestTraining(by who: String, now: Date) async throws -> Bool {
        let d = try await state.findOneAndUpdate(
            ["_id": "request", "pending": ["$ne": true]], ["$set": ["pending": true, "by": .string(who), "at": .date(now)]], upsert: false)
        if d != nil { return true }
        if try await state.findOne(["_id": "request"]) == nil {
            _ = try? await state.insertOne(["_id": "request", "pending": true, "by": .string(who), "at": .date(now)])
            return true
        }
        return false
    }

    /// Takes a pending request, if any.
    package func takeRequest() async throws -> Bool {
        try await state.findOneAndUpdate(["_id": "request", "pending": true], ["$set": ["pending": false]]) != nil
    }

    /// The training under way (or the last one): phase, iteration, loss, ETA, error.
    package func setProgress(_ p: TrainingProgress) async throws {
        var doc: Document = [
            "phase": .string(p.phase.rawValue), "version": .int(p.version), "iteration": .int(p.iteration), "iterations": .int(p.iterations),
            "startedAt": .date(p.startedAt), "updatedAt": .date(p.updatedAt),
        ]
        doc["loss"] = p.loss.map { .double($0) } ?? .null
        doc["etaSeconds"] = p.etaSeconds.map { .double($0) } ?? .null
        doc["error"] = p.error.map { .string($0) } ?? .null
        _ = try await state.updateOne(["_id": "progress"], ["$set": .document(doc)], upsert: true)
    }

    package func progress() async throws -> TrainingProgress? {
        guard let d = try await state.findOne(["_id": "progress"]), let phase = d["phase"]?.stringValue.flatMap(TrainingProgress.Phase.init)
        else { return nil }
        return TrainingProgress(
            phase: phase, version: d["version"]?.intValue ?? 0, iteration: d["iteration"]?.intValue ?? 0, iterations: d["iterations"]?.intValue ?? 0,
            loss: d["loss"]?.doubleValue, etaSeconds: d["etaSeconds"]?.doubleValue, error: d["error"]?.stringValue,
            startedAt: d["startedAt"]?.dateValue ?? Date(timeIntervalSince1970: 0), updatedAt: d["updatedAt"]?.dateValue ?? Date(timeIntervalSince1970: 0))
    }

    // MARK: - Versions

    /// The promoted version, if any.
    package func currentVersion() async throws -> Int? {
        try await state.findOne(["_id": "current"])?["version"]?.intValue
    }

    package func promote(_ version: Int) async throws {
        _ = try await state.updateOne(["_id": "current"], ["$set": ["version": .int(version)]], upsert: true)
        _ = try await models.updateOne(["_id": .int(version)], ["$set": ["promoted": true]])
    }

    package func nextVersion() async throws -> Int {
        (try await models.find([:], sort: ["_id": -1], limit: 1).first?["_id"]?.intValue ?? 0) + 1
    }

    package func versions(limit: Int = 20) async throws -> [Document] {
        try await models.find([:], sort: ["_id": -1], limit: limit, projection: ["items": 0, "popular": 0])
    }

    package func version(_ v: Int) async throws -> Document? { try await models.findOne(["_id": .int(v)]) }

    /// Writes a version's document (without its binary parts).
    package func saveVersion(_ doc: Document) async throws {
        _ = try await models.updateOne(["_id": doc["_id"] ?? .null], ["$set": .document(doc)], upsert: true)
    }

    /// Stores `bytes` as part `part` of `version`, in chunks.
    package func putBlob(version: Int, part: String, _ bytes: [UInt8]) async throws {
        _ = try await blobs.deleteMany(["version": .int(version), "part": .string(part)])
        var docs: [Document] = []
        var i = 0
        for start in stride(from: 0, to: max(bytes.count, 1), by: Self.chunkBytes) {
            let slice = Array(bytes[start..<min(bytes.count, start + Self.chunkBytes)])
            docs.append(["_id": .string("\(version)|\(part)|\(i)"), "version": .int(version), "part": .string(part), "i": .int(i), "b": .binary(slice)])
            i += 1
        }
        for d in docs { _ = try await blobs.insertOne(d) }
        _ = try await models.updateOne(["_id": .int(version)], ["$set": ["parts.\(part)": .int(docs.count)]], upsert: true)
    }

    /// Reads part `part` of `version`, refusing a part with chunks missing.
    package func blob(version: Int, part: String, chunks: Int) async throws -> [UInt8] {
        let docs = try await blobs.find(["version": .int(version), "part": .string(part)], sort: ["i": 1])
        guard docs.count == chunks else { throw RecommendStoreError.incomplete(version: version, part: part, read: docs.count, written: chunks) }
        var out: [UInt8] = []
        for d in docs {
            guard case .binary(let b)? = d["b"] else { throw RecommendStoreError.corrupt(version: version, part: part) }
            out += b
        }
        return out
    }

    /// Deletes versions beyond the newest `keep` (never the promoted one).
    package func prune(keep: Int, current: Int?) async throws {
        let old = try await models.find([:], sort: ["_id": -1], projection: ["_id": 1]).dropFirst(keep).compactMap { $0["_id"]?.intValue }
        for v in old where v != current {
            _ = try await blobs.deleteMany(["version": .int(v)])
            _ = try await models.deleteOne(["_id": .int(v)])
        }
    }
}

/// What a training is doing, for `GET /api/v1/recommendations/status` and `/metrics`.
package struct TrainingProgress: Sendable, Equatable {
    package enum Phase: String, Sendable {
        case reading, evaluating, training, saving, done, failed
    }

    package var phase: Phase
    package var version: Int
    package var iteration: Int
    package var iterations: Int
    package var loss: Double?
    package var etaSeconds: Double?
    package var error: String?
    package var startedAt: Date
    package var updatedAt: Date
}

package enum RecommendStoreError: Error, CustomStringConvertible, Equatable {
    case incomplete(version: Int, part: String, read: Int, written: Int)
    case corrupt(version: Int, part: String)

    package var description: String {
        switch self {
        case .incomplete(let v, let p, let r, let w): "recommend_blobs: model \(v) part \(p): read \(r) of \(w) chunks"
        case .corrupt(let v, let p): "recommend_blobs: model \(v) part \(p): a chunk is not binary"
        }
    }
}

/// Little-endian `Float32` / `Int32` arrays as bytes, and back.
enum Packing {
    static func bytes(_ values: [Float]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
        return out
    }

    static func floats(_ bytes: [UInt8]) -> [Float] {
        stride(from: 0, to: bytes.count - 3, by: 4).map { i in
            Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
        }
    }

    static func bytes(_ values: [Int32]) -> [UInt8] { RatingsStore.int32s(values) }

    static func int32s(_ bytes: [UInt8]) -> [Int32] { RatingsStore.int32s(bytes) }

    /// Strings joined by newlines (ids never hold one: they are checked identifiers).
    static func bytes(_ strings: [String]) -> [UInt8] { Array(strings.joined(separator: "\n").utf8) }

    static func strings(_ bytes: [UInt8]) -> [String] {
        bytes.isEmpty ? [] : String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }
}
