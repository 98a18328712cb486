import ArgusStore
import Foundation
import Hummingbird
import MongoStore
import NIOCore
import Ratings
import RatingsRuntime

extension RatingsAnswer: ResponseEncodable {}
extension LiveAudience: ResponseEncodable {}

/// `GET /api/v1/ratings`: viewing measures for analysts, aggregates only (docs/api.md,
/// "Ratings"; the method is docs/ratings-method.md).
package enum RatingsRoutes {
    package static func add(_ api: RouterGroup<HubRequestContext>, _ ratings: RatingsService) {
        api.get("ratings/live") { request, context -> LiveAudience in
            _ = try context.require(.analyst)
            for (name, _) in request.uri.queryParameters {
                throw HTTPError(.badRequest, message: "\(name): unknown parameter; this route takes none")
            }
            return try await OperatorAPI.storeCall { try await ratings.live(now: Date().millis) }
        }

        api.get("ratings") { request, context -> Response in
            _ = try context.require(.analyst)
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
                let body = try JSONEncoder().encode(answer)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
            }
        }
    }
}

extension RatingsService {
    /// A service over `store`, with the registered universe counted from `devices`.
    package convenience init(store: MongoStore, dayparts: DaypartSchedule, segments: [SegmentDimension] = []) {
        let devices = store.collection(Schema.devices)
        self.init(store: RatingsStore(store: store), dayparts: dayparts, segments: segments) { segment in
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
