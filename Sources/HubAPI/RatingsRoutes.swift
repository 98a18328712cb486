import ArgusStore
import ArgusSupport
import EPG
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MongoStore
import NIOCore
import Ratings
import RatingsRuntime

extension RatingsAnswer: ResponseEncodable {}
extension LiveAudience: ResponseEncodable {}
extension ProgrammeRatings: ResponseEncodable {}
extension EPGStore.ImportResult: ResponseEncodable {}

package struct EPGSourceList: ResponseEncodable {
    package struct Source: Encodable {
        var id: String
        var version: Int
        var importedAt: String?
        var programmes: Int
        var unmapped: [String]
        /// Scheduled sources: where from, when last tried, and why the last try failed.
        var url: String?
        var lastFetchAt: String?
        var lastError: String?
    }
    var items: [Source]
}

/// `GET /api/v1/ratings`: viewing measures for analysts, aggregates only (docs/api.md,
/// "Ratings"; the method is docs/ratings-method.md).
package enum RatingsRoutes {
    /// Largest XMLTV upload.
    package static let maxEPGBytes = 64 << 20

    package static func add(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies, _ ratings: RatingsService) {
        let epg = EPGStore(store: deps.store)

        // An XMLTV feed replaces its source's programmes, atomically; a feed that does not parse
        // changes nothing and is refused with its line.
        api.put("epg/sources/{id}") { request, context -> EPGStore.ImportResult in
            let who = try context.caller()
            let id = try context.parameters.require("id")
            _ = try Validate.identifier(id, field: "id")
            var explicit: [String: String] = [:]
            if let map = request.uri.queryParameters.get("map") {
                for pair in map.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty else {
                        throw HTTPError(.badRequest, message: "map: a comma-separated list of xmltv-id=hub-channel")
                    }
                    explicit[kv[0]] = kv[1]
                }
            }
            let buffer: ByteBuffer
            do { buffer = try await request.body.collect(upTo: maxEPGBytes) } catch {
                throw HTTPError(.contentTooLarge, message: "XMLTV larger than \(maxEPGBytes) bytes")
            }
            let document: EPGDocument
            do { document = try XMLTVParser().parse(Array(buffer.readableBytesView)) } catch {
                await deps.audit.record(who, in: context, action: "epg.import", target: id, result: "rejected: \(error)")
                throw HTTPError(.badRequest, message: "xmltv: \(error)")
            }
            let known = try await OperatorAPI.storeCall { try await ratings.store.recentChannels() }
            let mapping = ChannelMapping(explicit, identity: true, hubChannels: known.isEmpty ? nil : known)
            let result = try await OperatorAPI.storeCall { try await epg.replace(source: id, document, mapping: mapping, now: Date()) }
            await deps.audit.record(
                who, in: context, action: "epg.import", target: id,
                parameters: ["programmes": "\(result.programmes)", "unmapped": "\(result.unmapped.count)"], result: "ok")
            return result
        }

        api.get("epg/sources") { _, context -> EPGSourceList in
            let docs = try await OperatorAPI.storeCall { try await deps.store.collection(EPGStore.sourcesName).find([:], sort: ["_id": 1]) }
            return EPGSourceList(
                items: docs.compactMap { d in
                    guard let id = d["_id"]?.stringValue else { return nil }
                    return .init(
                        id: id, version: d["v"]?.intValue ?? 0, importedAt: d["importedAt"]?.dateValue.map { XMLTVTime.iso8601($0.millis) },
                        programmes: d["programmes"]?.intValue ?? 0, unmapped: d["unmapped"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                        url: d["url"]?.stringValue, lastFetchAt: d["lastFetchAt"]?.dateValue.map { XMLTVTime.iso8601($0.millis) },
                        lastError: d["lastError"]?.stringValue)
                })
        }

        // One day's per-box minute credit with pseudonymous box ids (HMAC under that day's key):
        // never the raw id, and not linkable across days. Below k boxes, no rows.
        let exporter = RatingsBuilder(
            store: deps.store, node: deps.node, logger: Logger(label: "argus.ratings"), now: { [clock = ratings.clock] in clock.nowMillis() })
        api.get("ratings/export") { request, context -> Response in
            let who = try context.caller()
            var day: String? = nil
            for (k, v) in request.uri.queryParameters {
                guard k == "day" else { throw HTTPError(.badRequest, message: "\(k): unknown parameter; known: day") }
                day = String(v)
            }
            guard let day, day.count == 10, let date = Validate.isoTime(day + "T00:00:00Z") else {
                throw HTTPError(.badRequest, message: "day: required, a UTC date such as 2026-12-01")
            }
            guard date.timeIntervalSince1970 >= 0 else { throw HTTPError(.badRequest, message: "day: before 1970-01-01") }
            let dayNumber = Int64(date.timeIntervalSince1970) / 86_400
            guard dayNumber <= ratings.clock.nowMillis() / 86_400_000 else { throw HTTPError(.badRequest, message: "day: in the future") }
            let credits = try await OperatorAPI.storeCall { try await exporter.credits(day: dayNumber) }
            let master = try await OperatorAPI.storeCall { try await ratings.store.exportMasterKey() }
            let key = PseudonymousID.periodKey(master: master, period: day)
            let suppressed = credits.count < ratings.parameters.suppressionK
            var lines = ["box,minute,channel,mode"]
            if !suppressed {
                let rows = credits.flatMap { box, list in
                    let id = PseudonymousID.make(boxId: box, periodKey: key)
                    return list.map { (id, $0) }
                }
                for (id, c) in rows.sorted(by: { ($0.0, $0.1.minute) < ($1.0, $1.1.minute) }) {
                    lines.append("\(id),\(RatingsService.iso(c.minute)),\(RatingsAnswer.csvField(c.channel)),\(c.mode.rawValue)")
                }
            }
            await deps.audit.record(
                who, in: context, action: "ratings.export", target: day,
                parameters: ["boxes": "\(credits.count)", "suppressed": "\(suppressed)"], result: "ok")
            var headers: HTTPFields = [.contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"ratings-\(day).csv\""]
            if suppressed, let name = HTTPField.Name("X-Argus-Suppressed") { headers[name] = "fewer than \(ratings.parameters.suppressionK) boxes" }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: lines.joined(separator: "\n") + "\n")))
        }

        api.get("ratings/programmes") { request, context -> ProgrammeRatings in
            var q: [String: String] = [:]
            for (k, v) in request.uri.queryParameters { q[String(k)] = String(v) }
            for name in q.keys.sorted() where !["from", "to", "channels", "title", "top", "universe"].contains(name) {
                throw HTTPError(.badRequest, message: "\(name): unknown parameter; known: channels, from, title, to, top, universe")
            }
            // The range, channels, top and universe are checked as for /ratings.
            var base = q.filter { ["from", "to", "channels", "universe", "top"].contains($0.key) }
            base["measures"] = "amr"
            let parsed: RatingsQuery
            do { parsed = try RatingsQuery.parse(base, dayparts: ratings.dayparts) } catch { throw HTTPError(.badRequest, message: "\(error)") }
            if let t = q["title"], t.isEmpty || t.count > 200 { throw HTTPError(.badRequest, message: "title: 1 to 200 characters") }
            return try await OperatorAPI.storeCall {
                try await ratings.programmeRatings(
                    from: parsed.from, to: parsed.to, channels: parsed.channels, title: q["title"], top: parsed.top, universe: parsed.universe,
                    epg: epg)
            }
        }

        api.get("ratings/live") { request, context -> LiveAudience in
            for (name, _) in request.uri.queryParameters {
                throw HTTPError(.badRequest, message: "\(name): unknown parameter; this route takes none")
            }
            return try await OperatorAPI.storeCall { try await ratings.live(now: ratings.clock.nowMillis()) }
        }

        api.get("ratings") { request, context -> Response in
            var q: [String: String] = [:]
            for (k, v) in request.uri.queryParameters {
                let key = String(k)
                guard q[key] == nil else { throw HTTPError(.badRequest, message: "\(key): given more than once") }
                q[key] = String(v)
            }
            let query: RatingsQuery
            do { query = try RatingsQuery.parse(q, dayparts: ratings.dayparts, segments: ratings.segments) } catch {
                throw HTTPError(.badRequest, message: "\(error)")
            }
            let answer = try await OperatorAPI.storeCall { try await ratings.answer(query) }
            switch query.format {
            case .csv:
                return Response(
                    status: .ok,
                    headers: [.contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"ratings.csv\""],
                    body: .init(byteBuffer: ByteBuffer(string: answer.csv)))
            case .json:
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: answer.json)))
            }
        }
    }
}

extension RatingsService {
    /// A service over `store`, with the registered universe counted from `devices`.
    package convenience init(store: MongoStore, dayparts: DaypartSchedule, segments: [SegmentDimension] = [], clock: HubClock = .real) {
        let devices = store.collection(Schema.devices)
        self.init(store: RatingsStore(store: store), dayparts: dayparts, segments: segments, clock: clock) { segment in
            var filter: Document = ["revoked": ["$ne": true]]
            if let segment {
                let field =
                    switch segment.dimension {
                    case .model: "model"
                    case .firmware: "firmware"
                    case .tag: "tags"
                    }
                filter[field] = .string(segment.value)
            }
            return try await devices.count(filter)
        }
    }
}
