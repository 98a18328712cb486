import ArgusStore
import ArgusSupport
import CommandRuntime
import Foundation
import HubGateway
import Hummingbird
import MongoStore
import STBProtocol

/// `POST /api/v1/devices:batch`: registers up to ``maxBoxes`` boxes in one request, from a
/// JSON body `{"devices": [{"id", "model", "tags"?}, ...]}` or a CSV body (`Content-Type:
/// text/csv`, lines `id,model[,tags]`, tags separated by `;`, optional header line
/// `id,model[,tags]`). The answer holds one result per box in request order: `created` (with
/// its secret, shown once), `exists` or `invalid` (with the reason). Valid new boxes are
/// stored with one unordered insertMany; the request is audited as one entry with the counts.
/// See docs/api.md.
package enum DeviceBatch {
    package static let maxBoxes = 1000
    /// Bodies past this get 413. 1,000 boxes with 16 long tags each fit in about 600 KB.
    package static let maxBodyBytes = 1 << 20
    package static let maxTags = 16
    package static let tagSeparator: Character = ";"

    /// One box as read from the request: valid (to be stored) or not, with the reason.
    package enum Row: Equatable {
        case box(id: String, model: String, tags: [String])
        /// `id` only when it is a valid identifier (garbage is not echoed back).
        case invalid(id: String?, reason: String)
    }

    /// A body that cannot be read as a batch at all: 400, nothing stored.
    package struct Unreadable: Error, Equatable { var message: String }

    package struct RowResult: Encodable, Equatable {
        package var index: Int
        /// CSV only: the line of the body (1-based) the box came from.
        package var line: Int?
        package var id: String?
        package var status: String
        package var secret: String?
        package var reason: String?
    }

    package struct Answer: ResponseEncodable {
        package var created: Int
        package var exists: Int
        package var invalid: Int
        package var results: [RowResult]
    }

    // MARK: - Reading the body

    /// `text/csv` (with any parameters) is CSV; anything else is read as JSON.
    package static func isCSV(_ contentType: String?) -> Bool {
        guard let ct = contentType else { return false }
        return ct.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() == "text/csv"
    }

    package static func validated(id: String, model: String, tags: [String], prefix: String = "") -> Row {
        let shownId = FrameCodec.isCatalogueName(id) ? id : nil
        guard shownId != nil else { return .invalid(id: nil, reason: prefix + "id must be 1 to 64 characters of letters, digits and ._:-") }
        guard FrameCodec.isCatalogueName(model) else {
            return .invalid(id: shownId, reason: prefix + "model must be 1 to 64 characters of letters, digits and ._:-")
        }
        guard tags.count <= maxTags else { return .invalid(id: shownId, reason: prefix + "at most \(maxTags) tags") }
        guard tags.allSatisfy({ FrameCodec.isCatalogueName($0, max: 32) }) else {
            return .invalid(id: shownId, reason: prefix + "tags[] must be 1 to 32 characters of letters, digits and ._:-")
        }
        return .box(id: id, model: model, tags: tags)
    }

    /// `{"devices": [...]}`. A malformed element is an invalid row; a body that is not such an
    /// object is ``Unreadable``.
    package static func parseJSON(_ bytes: some Collection<UInt8>) throws(Unreadable) -> [Row] {
        let value: JSONValue
        do { value = try JSONParser.parse(bytes) } catch {
            throw Unreadable(message: "body is not valid JSON (\(error.description)); send {\"devices\": [...]} as application/json, or text/csv")
        }
        guard case .object(let members) = value else { throw Unreadable(message: "body must be a JSON object {\"devices\": [...]}") }
        if let unknown = members.first(where: { $0.0 != "devices" }) { throw Unreadable(message: "unknown field \(unknown.0)") }
        guard let (_, list) = members.first else { throw Unreadable(message: "missing field devices") }
        guard case .array(let elements) = list else { throw Unreadable(message: "devices must be an array") }
        guard !elements.isEmpty else { throw Unreadable(message: "devices is empty") }
        return elements.enumerated().map { i, e in
            i < maxBoxes ? row(e) : .invalid(id: shownId(e), reason: "batch limit \(maxBoxes)")
        }
    }

    package static func shownId(_ e: JSONValue) -> String? {
        guard case .object(let m) = e, let (_, v) = m.first(where: { $0.0 == "id" }), case .string(let s) = v,
            FrameCodec.isCatalogueName(s)
        else { return nil }
        return s
    }

    package static func row(_ e: JSONValue) -> Row {
        guard case .object(let m) = e else { return .invalid(id: nil, reason: "not an object {\"id\", \"model\", \"tags\"?}") }
        let id = shownId(e)
        if let unknown = m.first(where: { !["id", "model", "tags"].contains($0.0) }) {
            return .invalid(id: id, reason: "unknown field \(AuditLog.bounded(unknown.0, 64))")
        }
        func string(_ key: String) -> String? {
            if case .string(let s)? = m.first(where: { $0.0 == key })?.1 { return s }
            return nil
        }
        guard let rawId = string("id") else { return .invalid(id: nil, reason: "id must be a string") }
        guard let model = string("model") else { return .invalid(id: id, reason: "model must be a string") }
        var tags: [String] = []
        switch m.first(where: { $0.0 == "tags" })?.1 {
        case nil, .null?: break
        case .array(let a)?:
            for t in a {
                guard case .string(let s) = t else { return .invalid(id: id, reason: "tags must be an array of strings") }
                tags.append(s)
            }
        default: return .invalid(id: id, reason: "tags must be an array of strings")
        }
        return validated(id: rawId, model: model, tags: tags)
    }

    /// CSV: UTF-8 lines `id,model[,tags]` (LF or CRLF), tags separated by `;`, no quoting (no
    /// valid field needs it); spaces around fields are ignored, blank lines skipped. The first
    /// line is a header, and skipped, when its first field is `id`. Returns the rows with their
    /// line numbers. A body that is not UTF-8 text, holds control characters, has a header
    /// naming other columns, or no box at all is ``Unreadable``.
    package static func parseCSV(_ bytes: some Collection<UInt8>) throws(Unreadable) -> [(line: Int, row: Row)] {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw Unreadable(message: "CSV body is not UTF-8 text") }
        if let bad = text.unicodeScalars.first(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\r" && $0 != "\t" }) {
            throw Unreadable(message: "CSV body holds control character U+\(String(format: "%04X", bad.value)); it is not CSV text")
        }
        var out: [(line: Int, row: Row)] = []
        var sawFirst = false
        // "\r\n" is one Character in Swift: split on it as well as on "\n".
        for (n, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let fields = raw.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            if fields.count == 1 && fields[0].isEmpty { continue }
            let line = n + 1
            if !sawFirst {
                sawFirst = true
                if fields[0].lowercased() == "id" {
                    let names = fields.map { $0.lowercased() }
                    guard names == ["id", "model"] || names == ["id", "model", "tags"] else {
                        throw Unreadable(message: "CSV header must be id,model or id,model,tags")
                    }
                    continue
                }
            }
            let prefix = "line \(line): "
            if out.count >= maxBoxes {
                out.append((line, .invalid(id: FrameCodec.isCatalogueName(fields[0]) ? fields[0] : nil, reason: "batch limit \(maxBoxes)")))
                continue
            }
            guard fields.count == 2 || fields.count == 3 else {
                out.append(
                    (
                        line,
                        .invalid(
                            id: FrameCodec.isCatalogueName(fields[0]) ? fields[0] : nil,
                            reason: prefix + "expected id,model[,tags] (2 or 3 fields), got \(fields.count)")
                    ))
                continue
            }
            let tagField = fields.count == 3 ? fields[2] : ""
            let tags =
                tagField.isEmpty
                ? []
                : tagField.split(separator: tagSeparator, omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(in: .whitespaces) }
            out.append((line, validated(id: fields[0], model: fields[1], tags: tags, prefix: prefix)))
        }
        guard !out.isEmpty else { throw Unreadable(message: "CSV body holds no box (lines id,model[,tags])") }
        return out
    }

    /// A later row with the id of an earlier valid row becomes invalid: the first one is kept.
    package static func refusingRepeats(_ rows: [Row]) -> [Row] {
        var first: [String: Int] = [:]
        return rows.enumerated().map { i, r in
            guard case .box(let id, _, _) = r else { return r }
            if let j = first[id] { return .invalid(id: id, reason: "duplicate id in this batch (first at index \(j))") }
            first[id] = i
            return r
        }
    }

    // MARK: - The route

    package static func add(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies) {
        api.post("devices:batch") { request, context -> Answer in
            let who = try context.caller()
            let buffer: ByteBuffer
            do { buffer = try await request.body.collect(upTo: maxBodyBytes) } catch {
                throw HTTPError(.contentTooLarge, message: "request body larger than \(maxBodyBytes) bytes")
            }
            let csv = isCSV(request.headers[.contentType])
            var lines: [Int]? = nil
            var rows: [Row]
            do throws(Unreadable) {
                if csv {
                    let parsed = try parseCSV(buffer.readableBytesView)
                    lines = parsed.map(\.line)
                    rows = parsed.map(\.row)
                } else {
                    rows = try parseJSON(buffer.readableBytesView)
                }
            } catch {
                throw HTTPError(.badRequest, message: error.message)
            }
            rows = refusingRepeats(rows)

            var results = rows.enumerated().map { i, r -> RowResult in
                switch r {
                case .box(let id, _, _): return RowResult(index: i, line: lines?[i], id: id, status: "created")
                case .invalid(let id, let reason): return RowResult(index: i, line: lines?[i], id: id, status: "invalid", reason: reason)
                }
            }
            var boxes: [NewDevice] = []
            var positions: [Int] = []
            for (i, r) in rows.enumerated() {
                guard case .box(let id, let model, let tags) = r else { continue }
                let secret = Secrets.generate()
                results[i].secret = secret
                boxes.append(NewDevice(id: id, model: model, tags: tags, secretHash: Secrets.hash(secret)))
                positions.append(i)
            }
            do {
                for d in try await deps.devices.registerMany(boxes, now: Date()) {
                    results[positions[d]].status = "exists"
                    results[positions[d]].secret = nil
                }
            } catch {
                throw OperatorAPI.storeUnavailable(error, context)
            }
            let count = { (s: String) in results.reduce(0) { $0 + ($1.status == s ? 1 : 0) } }
            let answer = Answer(created: count("created"), exists: count("exists"), invalid: count("invalid"), results: results)
            await deps.audit.record(
                who, in: context, action: "device.register_batch", target: nil,
                parameters: [
                    "format": csv ? "csv" : "json", "rows": String(results.count),
                    "created": String(answer.created), "exists": String(answer.exists), "invalid": String(answer.invalid),
                ], result: "ok")
            return answer
        }
    }
}
