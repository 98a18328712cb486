import ArgusSupport
import Commands
import Crypto
import Foundation
import Logging
import MongoStore
import NIOCore

/// A catalogue entry's status.
package enum FirmwareStatus: String, Codable, Sendable, CaseIterable {
    /// Its image is to be uploaded.
    case awaitingUpload = "awaiting_upload"
    case available
    /// A download found the stored image damaged (see `problem`), until it is uploaded again.
    case unavailable
}

/// A document of `firmware`: a firmware image in the catalogue, decoded with ``BSONDecoder``.
/// The API shows it as its own view (HubAPI `FirmwareView`).
package struct FirmwareRecord: Sendable, Codable, Equatable {
    /// The claim of an upload in progress (`uploading`).
    package struct UploadClaim: Sendable, Codable, Equatable {
        package var gen: String
        package var at: Date
    }

    package var version: String
    package var models: [String]
    package var size: Int
    package var sha256: String
    /// Where boxes download it: an operator-given URL, or the hub's own `/firmware/{version}`.
    package var url: String?
    package var status: FirmwareStatus
    package var uploaded: Bool
    /// Why the image is unavailable.
    package var problem: String?
    package var createdAt: Date?
    package var createdBy: String?
    package var uploadedAt: Date?
    /// The upload generation whose chunks are served (nil for an image stored before
    /// generations, or none uploaded).
    package var generation: String?
    /// An upload in progress: it holds the claim until it commits, fails, or goes 60 s
    /// without storing a chunk.
    package var uploading: UploadClaim?

    package var uploadingSince: Date? { uploading?.at }

    package enum CodingKeys: String, CodingKey {
        case version = "_id", models, size, sha256, url, status, uploaded, problem, createdAt, createdBy, uploadedAt, generation, uploading
    }

    package init(
        version: String, models: [String], size: Int, sha256: String, url: String? = nil, status: FirmwareStatus, uploaded: Bool = false,
        problem: String? = nil, createdAt: Date? = nil, createdBy: String? = nil, uploadedAt: Date? = nil, generation: String? = nil,
        uploading: UploadClaim? = nil
    ) {
        self.version = version; self.models = models; self.size = size; self.sha256 = sha256; self.url = url; self.status = status
        self.uploaded = uploaded; self.problem = problem; self.createdAt = createdAt; self.createdBy = createdBy
        self.uploadedAt = uploadedAt; self.generation = generation; self.uploading = uploading
    }
}

extension FirmwareRecord {
    /// What the job planner needs of it.
    package var image: FirmwareImage {
        let s: FirmwareImage.Status =
            switch status {
            case .available: .available
            case .unavailable: .unavailable(problem: problem)
            case .awaitingUpload: .awaitingUpload
            }
        return FirmwareImage(version: version, models: models, size: Int64(size), sha256: sha256, url: url, status: s)
    }

    /// Why boxes cannot be sent this image now, or nil if they can.
    package var unservableReason: String? { image.unservableReason }
}

/// The `firmware` catalogue and uploaded images in `firmware_image_chunks` (255 KiB each, so
/// any node serves any image and a byte range reads only the chunks it needs).
///
/// An upload writes a new generation of chunks beside the served one and switches the
/// catalogue to it in one update, only after its size and SHA-256 match; a failed, abandoned
/// or concurrent upload never touches the verified image. One upload per image at a time:
/// the catalogue entry holds a claim (`uploading`), refreshed as chunks are stored.
package struct FirmwareRepository: Sendable {
    package let catalogue: MongoCollection
    package let chunks: MongoCollection
    package let legacyChunks: MongoCollection
    package static let chunkSize = 255 * 1024
    package static let maxImageBytes = 1 << 30
    /// An upload that stores nothing for this long loses its claim (a killed hub's upload).
    package static let claimTimeout: TimeInterval = 60
    package let decodeFailures: DecodeFailures

    package init(store: MongoStore, logger: Logger = Logger(label: "argus.store")) {
        catalogue = store.collection(Schema.firmware)
        chunks = store.collection(Schema.firmwareImageChunks)
        legacyChunks = store.collection(Schema.firmwareChunks)
        decodeFailures = DecodeFailures(collection: Schema.firmware, logger: logger)
    }

    package func add(version: String, models: [String], size: Int, sha256: String, url: String?, by: String) async throws {
        var d: Document = [
            "_id": .string(version), "models": .array(models.map { .string($0) }), "size": .int(size),
            "sha256": .string(sha256), "status": .string((url == nil ? FirmwareStatus.awaitingUpload : .available).rawValue),
            "uploaded": false, "createdAt": .date(Date()), "createdBy": .string(by),
        ]
        if let url { d["url"] = .string(url) }
        try await catalogue.insertOne(d)
    }

    /// The catalogue entry; nil only when there is none. One that does not decode throws
    /// ``BSONDecodingError`` (counted and logged).
    package func get(_ version: String) async throws -> FirmwareRecord? {
        try await catalogue.findOne(["_id": .string(version)]).map { d throws(BSONDecodingError) in try decodeFailures.decode(d, as: FirmwareRecord.self) }
    }

    /// By version; an entry that does not decode is left out (counted and logged).
    package func list() async throws -> [FirmwareRecord] {
        decodeFailures.decodeEach(try await catalogue.find([:], sort: ["_id": 1], limit: 1000), as: FirmwareRecord.self)
    }

    package enum UploadError: Error, Equatable {
        case tooLarge(limit: Int)
        case mismatch(size: Int, sha256: String)
        /// Another upload of this image holds the claim.
        case busy
        /// The catalogue entry is gone.
        case notFound
    }

    /// Stores an image as a new generation while hashing it, checks size and SHA-256 against
    /// the catalogue, and only then makes it the served generation. On any failure the new
    /// generation's chunks are removed and the served image is as it was.
    package func upload(_ record: FirmwareRecord, body: some AsyncSequence<ByteBuffer, any Error>, url: String) async throws {
        let v = record.version
        let gen = Secrets.randomHex(bytes: 8)
        let claimed = try await catalogue.updateOne(
            [
                "_id": .string(v),
                "$or": [
                    ["uploading": ["$exists": false]],
                    ["uploading.at": ["$lt": .date(Date().addingTimeInterval(-Self.claimTimeout))]],
                ],
            ],
            ["$set": ["uploading": ["gen": .string(gen), "at": .date(Date())]]])
        guard claimed.matchedCount == 1 else {
            throw try await get(v) == nil ? UploadError.notFound : UploadError.busy
        }
        let mine: Document = ["_id": .string(v), "uploading.gen": .string(gen)]
        var hasher = SHA256()
        var pending: [UInt8] = []
        var n = 0
        var total = 0
        func store(_ bytes: [UInt8]) async throws {
            try await chunks.insertOne([
                "_id": .string("\(v)|\(gen)|\(n)"), "fw": .string(v), "gen": .string(gen), "n": .int(n),
                "data": .binary(bytes),
            ])
            n += 1
            if n % 8 == 0 {
                let r = try await catalogue.updateOne(mine, ["$set": ["uploading.at": .date(Date())]])
                guard r.matchedCount == 1 else { throw UploadError.busy }
            }
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
            // The switch: one update, guarded by the claim.
            let committed = try await catalogue.updateOne(
                mine,
                [
                    "$set": [
                        "status": .string(FirmwareStatus.available.rawValue), "uploaded": true, "url": .string(url), "uploadedAt": .date(Date()),
                        "generation": .string(gen),
                    ],
                    "$unset": ["uploading": "", "problem": ""],
                ])
            guard committed.matchedCount == 1 else { throw UploadError.busy }
        } catch {
            _ = try? await chunks.deleteMany(["fw": .string(v), "gen": .string(gen)])
            _ = try? await catalogue.updateOne(mine, ["$unset": ["uploading": ""]])
            throw error
        }
        // Older generations and pre-generation chunks are no longer served. A download still
        // reading one fails fast (its next chunk is missing) and resumes by Range on the new
        // one, which holds the same bytes (same SHA-256).
        _ = try? await chunks.deleteMany(["fw": .string(v), "gen": ["$ne": .string(gen)]])
        _ = try? await legacyChunks.deleteMany(["fw": .string(v)])
    }

    /// The chunks that hold bytes `range` (inclusive) of `record`'s served image, in order,
    /// each checked for its place and length; a missing or short chunk is ``DamagedImage``.
    package func chunks(_ record: FirmwareRecord, covering range: ClosedRange<Int>) async throws -> [(index: Int, data: [UInt8])] {
        let first = range.lowerBound / Self.chunkSize, last = range.upperBound / Self.chunkSize
        let docs: [Document]
        if let gen = record.generation {
            docs = try await chunks.find(
                ["fw": .string(record.version), "gen": .string(gen), "n": ["$gte": .int(first), "$lte": .int(last)]],
                sort: ["n": 1])
        } else {
            docs = try await legacyChunks.find(["fw": .string(record.version), "n": ["$gte": .int(first), "$lte": .int(last)]], sort: ["n": 1])
        }
        var out: [(index: Int, data: [UInt8])] = []
        out.reserveCapacity(last - first + 1)
        let count = (record.size + Self.chunkSize - 1) / Self.chunkSize
        for (expected, d) in zip(first...last, docs + Array(repeating: [:], count: max(0, last - first + 1 - docs.count))) {
            guard let i = d["n"]?.intValue, i == expected, case .binary(let b)? = d["data"] else {
                throw DamagedImage(version: record.version, problem: "chunk \(expected) of \(count) is missing")
            }
            let want = i == count - 1 ? record.size - i * Self.chunkSize : Self.chunkSize
            guard b.count == want else {
                throw DamagedImage(version: record.version, problem: "chunk \(i) of \(count) holds \(b.count) bytes, not \(want)")
            }
            out.append((i, b))
        }
        return out
    }

    /// Throws ``DamagedImage`` unless every chunk holding bytes `range` is stored (one
    /// indexed count).
    package func checkPresent(_ record: FirmwareRecord, covering range: ClosedRange<Int>) async throws {
        let first = range.lowerBound / Self.chunkSize, last = range.upperBound / Self.chunkSize
        var filter: Document = ["fw": .string(record.version), "n": ["$gte": .int(first), "$lte": .int(last)]]
        if let gen = record.generation { filter["gen"] = .string(gen) }
        let found = try await (record.generation == nil ? legacyChunks : chunks).count(filter)
        let total = (record.size + Self.chunkSize - 1) / Self.chunkSize
        guard found == last - first + 1 else {
            throw DamagedImage(version: record.version, problem: "\(last - first + 1 - found) of its \(total) chunks are missing")
        }
    }

    /// Marks the served image unavailable, so no new job or rollout is sent to it, until it is
    /// uploaded again. Only if the generation is still the one that was found damaged.
    package func markDamaged(_ record: FirmwareRecord, problem: String) async throws {
        var filter: Document = ["_id": .string(record.version)]
        filter["generation"] = record.generation.map { .string($0) } ?? ["$exists": false]
        _ = try await catalogue.updateOne(filter, ["$set": ["status": .string(FirmwareStatus.unavailable.rawValue), "problem": .string(problem)]])
    }
}

/// A stored image with a missing or short chunk.
package struct DamagedImage: Error, Equatable {
    package var version: String
    package var problem: String
}
