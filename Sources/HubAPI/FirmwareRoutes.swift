import ArgusStore
import ArgusSupport
import CommandRuntime
import Foundation
import HubGateway
import Hummingbird
import MongoStore
import STBProtocol

package struct AddFirmwareRequest: Decodable {
    package var version: String
    package var models: [String]?
    package var size: Int?
    package var sha256: String?
    package var url: String?
}

package struct FirmwareList: ResponseEncodable { var items: [FirmwareView] }

/// The firmware catalogue (`/api/v1/firmware`) and image downloads (`/firmware/{version}`,
/// with Range support, no token: boxes fetch it with plain HTTP; images are not secret).
package enum FirmwareRoutes {
    package static func add(
        _ router: Router<HubRequestContext>, _ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies,
        _ firmware: FirmwareRepository, publicURL: String
    ) {
        api.post("firmware") { request, context -> EditedResponse<FirmwareView> in
            let who = try context.caller()
            let body = try await Validate.body(AddFirmwareRequest.self, request, context)
            var params = ["version": body.version]
            do {
                let version = try Validate.identifier(body.version, field: "version")
                let models = try (body.models ?? []).map { try Validate.identifier($0, field: "models[]") }
                guard let sha = body.sha256?.lowercased() else { throw Refusal("sha256 is required: a firmware without a checksum is refused") }
                guard sha.count == 64, sha.allSatisfy({ $0.isHexDigit }) else { throw Refusal("sha256 must be 64 hex digits") }
                guard let size = body.size else { throw Refusal("size is required (bytes)") }
                guard (1...FirmwareRepository.maxImageBytes).contains(size) else { throw Refusal("size must be from 1 to \(FirmwareRepository.maxImageBytes)") }
                if let url = body.url {
                    guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count <= 2048 else {
                        throw Refusal("url must be an http:// or https:// URL (or leave it out and upload the image)")
                    }
                }
                params["sha256"] = sha
                do {
                    try await firmware.add(version: version, models: models, size: size, sha256: sha, url: body.url, by: who.name)
                } catch let e as MongoStoreError where e.kind == .duplicateKey {
                    throw Refusal("firmware \(version) is already in the catalogue", .conflict)
                } catch let r as Refusal { throw r } catch { throw OperatorAPI.storeUnavailable(error, context) }
                await deps.audit.record(who, in: context, action: "firmware.add", target: version, parameters: params, result: "ok")
                guard let rec = try await OperatorAPI.storeCall({ try await firmware.get(version) }) else {
                    throw HTTPError(.notFound, message: "firmware \(version) was deleted while it was being added")
                }
                return EditedResponse(status: .created, response: FirmwareView(rec))
            } catch let r as Refusal {
                await deps.audit.record(who, in: context, action: "firmware.add", target: body.version, parameters: params, result: "rejected: \(r.message)")
                throw r.http
            }
        }

        api.get("firmware") { _, context -> FirmwareList in
            return FirmwareList(items: try await OperatorAPI.storeCall { try await firmware.list() }.map(FirmwareView.init))
        }

        api.get("firmware/{version}") { _, context -> FirmwareView in
            let v = try context.parameters.require("version")
            guard let r = try await OperatorAPI.storeCall({ try await firmware.get(v) }) else { throw HTTPError(.notFound, message: "no firmware \(v)") }
            return FirmwareView(r)
        }

        // The image, streamed into the store as a new generation and checked against the
        // catalogue's size and SHA-256 before it replaces the served one.
        api.put("firmware/{version}/image") { request, context -> FirmwareView in
            let who = try context.caller()
            let v = try context.parameters.require("version")
            func refuse(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) async -> HTTPError {
                await deps.audit.record(who, in: context, action: "firmware.upload", target: v, result: "rejected: \(message)")
                return HTTPError(status, headers: headers, message: message)
            }
            guard let rec = try await OperatorAPI.storeCall({ try await firmware.get(v) }) else {
                throw await refuse(.notFound, "no firmware \(v)")
            }
            if let external = rec.url, !rec.uploaded {
                throw await refuse(.conflict, "firmware \(v) is served from \(external); it takes no upload")
            }
            let url = publicURL + "/firmware/" + v
            do {
                try await firmware.upload(rec, body: request.body, url: url)
            } catch let e as FirmwareRepository.UploadError {
                switch e {
                case .tooLarge(let limit):
                    throw await refuse(.badRequest, "the image is larger than the catalogue's size (\(limit) bytes); the served image is unchanged")
                case .mismatch(let size, let sha):
                    throw await refuse(
                        .badRequest,
                        "the image (\(size) bytes, sha256 \(sha)) does not match the catalogue (\(rec.size) bytes, sha256 \(rec.sha256)); nothing was kept and the served image is unchanged"
                    )
                case .busy:
                    throw await refuse(
                        .conflict,
                        "another upload of firmware \(v) is in progress; retry when it ends (an abandoned one gives way after \(Int(FirmwareRepository.claimTimeout)) s)",
                        headers: [.retryAfter: String(Int(FirmwareRepository.claimTimeout))])
                case .notFound:
                    throw await refuse(.notFound, "no firmware \(v)")
                }
            } catch {
                context.logger.warning("firmware upload failed", metadata: [LogKey.firmwareVersion: .string(v), LogKey.error: .string("\(error)")])
                throw await refuse(
                    .serviceUnavailable, "the store is unavailable; the upload was not kept and the served image is unchanged; retry shortly",
                    headers: [.retryAfter: "5"])
            }
            await deps.audit.record(who, in: context, action: "firmware.upload", target: v, parameters: ["size": String(rec.size)], result: "ok")
            guard let fresh = try await OperatorAPI.storeCall({ try await firmware.get(v) }) else {
                throw HTTPError(.notFound, message: "firmware \(v) was deleted after its upload")
            }
            return FirmwareView(fresh)
        }

        router.get("/firmware/{version}") { request, context -> Response in
            let v = try context.parameters.require("version")
            guard let rec = try await OperatorAPI.storeCall({ try await firmware.get(v) }), rec.uploaded else {
                throw HTTPError(.notFound, message: "no uploaded image for firmware \(v)")
            }
            if rec.status == .unavailable {
                throw HTTPError(.serviceUnavailable, message: "firmware \(v) is unavailable: \(rec.problem ?? "its stored image is damaged")")
            }
            var range = 0...(rec.size - 1)
            var status = HTTPResponse.Status.ok
            if let header = request.headers[.range] {
                guard let r = parseRange(header, size: rec.size) else {
                    return Response(status: .rangeNotSatisfiable, headers: [.contentRange: "bytes */\(rec.size)", .acceptRanges: "bytes"])
                }
                range = r
                status = .partialContent
            }
            // Every chunk the range needs is checked before the status line is sent, so a
            // damaged image is a fast 503 and is marked unavailable, never a short body.
            let chunk = FirmwareRepository.chunkSize
            let firstBatch: [(index: Int, data: [UInt8])]
            do {
                firstBatch = try await firmware.chunks(rec, covering: range.lowerBound...min(range.upperBound, (range.lowerBound / chunk + 4) * chunk - 1))
                try await firmware.checkPresent(rec, covering: range)
            } catch let d as DamagedImage {
                context.logger.error("firmware image damaged", metadata: [LogKey.firmwareVersion: .string(v), LogKey.problem: .string(d.problem)])
                try? await firmware.markDamaged(rec, problem: d.problem)
                throw HTTPError(.serviceUnavailable, message: "firmware \(v) is unavailable: \(d.problem); upload the image again")
            } catch { throw OperatorAPI.storeUnavailable(error, context) }
            var headers: HTTPFields = [
                .contentType: "application/octet-stream", .acceptRanges: "bytes",
                .contentLength: String(range.count), .eTag: "\"\(rec.sha256)\"",
            ]
            if status == .partialContent { headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(rec.size)" }
            let wanted = range
            let logger = context.logger
            return Response(
                status: status, headers: headers,
                body: ResponseBody { writer in
                    // A few chunks at a time, so a large image is never whole in memory. A chunk
                    // that goes missing mid-way (a new upload replaced this generation) ends the
                    // response with an error: the connection is closed at once, never left waiting
                    // for bytes, and the box resumes by Range.
                    var batch = firstBatch
                    var next = wanted.lowerBound / chunk
                    let last = wanted.upperBound / chunk
                    while next <= last {
                        let upTo = min(last, next + 3)
                        if batch.isEmpty {
                            do {
                                batch = try await firmware.chunks(
                                    rec, covering: max(next * chunk, wanted.lowerBound)...min(wanted.upperBound, (upTo + 1) * chunk - 1))
                            } catch let d as DamagedImage {
                                logger.error(
                                    "firmware image damaged mid-download", metadata: [LogKey.firmwareVersion: .string(v), LogKey.problem: .string(d.problem)])
                                try? await firmware.markDamaged(rec, problem: d.problem)
                                throw d
                            }
                        }
                        for (i, data) in batch {
                            let base = i * chunk
                            let from = max(wanted.lowerBound, base) - base, to = min(wanted.upperBound, base + data.count - 1) - base
                            if from <= to { try await writer.write(ByteBuffer(bytes: data[from...to])) }
                        }
                        batch = []
                        next = upTo + 1
                    }
                    try await writer.finish(nil)
                })
        }
    }

    /// One `bytes=` range (`a-b`, `a-`, `-n`), clamped to the image; nil if unsatisfiable or
    /// malformed. Multiple ranges are not supported and are treated as unsatisfiable.
    package static func parseRange(_ header: String, size: Int) -> ClosedRange<Int>? {
        guard header.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let a = spec[..<dash], b = spec[spec.index(after: dash)...]
        if a.isEmpty {
            guard let n = Int(b), n > 0 else { return nil }
            return max(0, size - n)...(size - 1)
        }
        guard let start = Int(a), start >= 0, start < size else { return nil }
        if b.isEmpty { return start...(size - 1) }
        guard let end = Int(b), end >= start else { return nil }
        return start...min(end, size - 1)
    }
}
