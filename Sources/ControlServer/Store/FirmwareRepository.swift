import Crypto
import Foundation
import MongoStore
import NIOCore

/// A firmware image in the catalogue.
struct FirmwareRecord: Sendable, Codable, Equatable {
    var version: String
    var models: [String]
    var size: Int
    var sha256: String
    /// Where boxes download it: an operator-given URL, or the hub's own `/firmware/{version}`.
    var url: String?
    /// `available`, or `awaiting_upload` until its image is uploaded.
    var status: String
    var uploaded: Bool
    var createdAt: Date?
    var createdBy: String?

    init(_ d: Document) {
        version = d["_id"]?.stringValue ?? ""
        models = d["models"]?.arrayValue?.compactMap(\.stringValue) ?? []
        size = d["size"]?.intValue ?? 0
        sha256 = d["sha256"]?.stringValue ?? ""
        url = d["url"]?.stringValue
        status = d["status"]?.stringValue ?? "awaiting_upload"
        uploaded = d["uploaded"]?.boolValue ?? false
        createdAt = d["createdAt"]?.dateValue
        createdBy = d["createdBy"]?.stringValue
    }
}

/// The `firmware` catalogue and uploaded images in `firmware_chunks` (255 KiB each, so any
/// node serves any image and a byte range reads only the chunks it needs).
struct FirmwareRepository: Sendable {
    let catalogue: MongoCollection
    let chunks: MongoCollection
    static let chunkSize = 255 * 1024
    static let maxImageBytes = 1 << 30

    init(store: MongoStore) {
        catalogue = store.collection(Schema.firmware)
        chunks = store.collection(Schema.firmwareChunks)
    }

    func add(version: String, models: [String], size: Int, sha256: String, url: String?, by: String) async throws {
        var d: Document = ["_id": .string(version), "models": .array(models.map { .string($0) }), "size": .int(size),
                           "sha256": .string(sha256), "status": .string(url == nil ? "awaiting_upload" : "available"),
                           "uploaded": false, "createdAt": .date(Date()), "createdBy": .string(by)]
        if let url { d["url"] = .string(url) }
        try await catalogue.insertOne(d)
    }

    func get(_ version: String) async throws -> FirmwareRecord? {
        try await catalogue.findOne(["_id": .string(version)]).map(FirmwareRecord.init)
    }

    func list() async throws -> [FirmwareRecord] {
        try await catalogue.find([:], sort: ["_id": 1], limit: 1000).map(FirmwareRecord.init)
    }

    enum UploadError: Error, Equatable {
        case tooLarge(limit: Int)
        case mismatch(size: Int, sha256: String)
    }

    /// Stores an image chunk by chunk while hashing it; checks size and SHA-256 against the
    /// catalogue, and on a mismatch deletes what was stored. The entry becomes available with
    /// `url` only when the image matches.
    func upload(_ record: FirmwareRecord, body: some AsyncSequence<ByteBuffer, any Error>, url: String) async throws {
        _ = try await chunks.deleteMany(["fw": .string(record.version)])
        var hasher = SHA256()
        var pending: [UInt8] = []
        var n = 0
        var total = 0
        func store(_ bytes: [UInt8]) async throws {
            try await chunks.insertOne(["_id": .string("\(record.version)|\(n)"), "fw": .string(record.version), "n": .int(n),
                                        "data": .binary(bytes)])
            n += 1
        }
        do {
            for try await buffer in body {
                total += buffer.readableBytes
                guard total <= record.size else { throw UploadError.tooLarge(limit: record.size) }
                let bytes = Array(buffer.readableBytesView)
                hasher.update(data: bytes)
                pending += bytes
                while pending.count >= Self.chunkSize {
                    try await store(Array(pending.prefix(Self.chunkSize)))
                    pending.removeFirst(Self.chunkSize)
                }
            }
            if !pending.isEmpty { try await store(pending) }
            let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            guard total == record.size, digest == record.sha256 else { throw UploadError.mismatch(size: total, sha256: digest) }
        } catch {
            _ = try? await chunks.deleteMany(["fw": .string(record.version)])
            throw error
        }
        _ = try await catalogue.updateOne(["_id": .string(record.version)], [
            "$set": ["status": "available", "uploaded": true, "url": .string(url), "uploadedAt": .date(Date())],
        ])
    }

    /// The image's chunks covering bytes `range` (inclusive), in order.
    func chunks(_ version: String, covering range: ClosedRange<Int>) async throws -> [(index: Int, data: [UInt8])] {
        let first = range.lowerBound / Self.chunkSize, last = range.upperBound / Self.chunkSize
        return try await chunks.find(["fw": .string(version), "n": ["$gte": .int(first), "$lte": .int(last)]], sort: ["n": 1])
            .compactMap { d in
                guard let i = d["n"]?.intValue, case .binary(let b)? = d["data"] else { return nil }
                return (i, b)
            }
    }
}
