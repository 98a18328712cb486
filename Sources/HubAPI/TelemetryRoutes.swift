import ArgusStore
import ArgusSupport
import CommandRuntime
import Foundation
import HubGateway
import Hummingbird
import Synchronization

package struct MetricSeries: ResponseEncodable {
    package var device: String
    package var from: Date
    package var to: Date
    package var step: Int
    package var latest: MetricPoint?
    package var points: [MetricPoint]
}
package struct EventList: ResponseEncodable { var items: [EventView] }
package struct LogList: ResponseEncodable { var items: [LogView] }
extension FleetSummary: ResponseEncodable {}

/// The last fleet summary computed, for callers that accept an older answer
/// (`GET /api/v1/fleet/summary?maxAgeSec=N`, the console): the summary groups every box and
/// takes seconds at fleet scale, and a page should not wait for it on each load.
package final class FleetSummaryCache: Sendable {
    private let last = Mutex<(value: FleetSummary, at: Date)?>(nil)

    package init() {}

    /// The cached summary if it is at most `maxAge` seconds old, else a fresh one (kept).
    package func get(maxAge: TimeInterval, now: Date = Date(), compute: () async throws -> FleetSummary) async throws -> FleetSummary {
        if maxAge > 0, let c = last.withLock({ $0 }), now.timeIntervalSince(c.at) <= maxAge { return c.value }
        let started = Date()
        let fresh = try await compute()
        last.withLock { c in if (c?.at ?? .distantPast) < started { c = (fresh, started) } }
        return fresh
    }
}

extension OperatorAPI {
    /// A time range from `from`/`to` (ISO 8601 or ms since the epoch); by default the last hour.
    package static func timeRange(_ request: Request, maxSpan: TimeInterval = 31 * 86_400) throws -> (Date, Date) {
        func parse(_ name: String) throws -> Date? {
            guard let raw = request.uri.queryParameters.get(name).map({ String($0) }) else { return nil }
            if let ms = Int64(raw) { return Date(timeIntervalSince1970: Double(ms) / 1000) }
            if let d = Validate.isoTime(raw) { return d }
            throw HTTPError(.badRequest, message: "\(name) must be an ISO 8601 time or milliseconds since the epoch")
        }
        let to = try parse("to") ?? Date()
        let from = try parse("from") ?? to.addingTimeInterval(-3600)
        guard from < to else { throw HTTPError(.badRequest, message: "from must be before to") }
        guard to.timeIntervalSince(from) <= maxSpan else { throw HTTPError(.badRequest, message: "the range may span at most \(Int(maxSpan / 86_400)) days") }
        return (from, to)
    }

    package static func addTelemetryRoutes(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies) {
        let queries = TelemetryQueries(store: deps.store)

        api.get("devices/{id}/metrics") { request, context -> MetricSeries in
            let id = try context.parameters.require("id")
            let (from, to) = try timeRange(request)
            let step = try Validate.int(request, "step", default: 60, range: 1...86_400)
            guard to.timeIntervalSince(from) / Double(step) <= 10_000 else {
                throw HTTPError(.badRequest, message: "at most 10000 points: widen step or narrow the range")
            }
            let r = try await storeCall { try await queries.metrics(device: id, from: from, to: to, step: step) }
            return MetricSeries(device: id, from: from, to: to, step: step, latest: r.latest, points: r.points)
        }

        api.get("devices/{id}/events") { request, context -> EventList in
            // A box's viewing is personal data: operators only, and every read is audited.
            let who = try context.caller()
            let id = try context.parameters.require("id")
            let (from, to) = try timeRange(request)
            let limit = try Validate.int(request, "limit", default: 200, range: 1...1000)
            let items = try await storeCall { try await queries.events(device: id, from: from, to: to, limit: limit) }
            await deps.audit.record(
                who, in: context, action: "device.events.read", target: id,
                parameters: ["from": "\(from.millis)", "to": "\(to.millis)", "count": "\(items.count)"], result: "ok")
            return EventList(items: items)
        }

        api.get("devices/{id}/logs") { request, context -> LogList in
            let id = try context.parameters.require("id")
            let (from, to) = try timeRange(request)
            let limit = try Validate.int(request, "limit", default: 200, range: 1...1000)
            let level = request.uri.queryParameters.get("level").map { String($0) }
            if let level, !["debug", "info", "warn", "error"].contains(level) {
                throw HTTPError(.badRequest, message: "level must be debug, info, warn or error")
            }
            return LogList(items: try await storeCall { try await queries.logs(device: id, from: from, to: to, level: level, limit: limit) })
        }

        let summaries = FleetSummaryCache()
        api.get("fleet/summary") { request, context -> FleetSummary in
            let maxAge = try Validate.int(request, "maxAgeSec", default: 0, range: 0...3600)
            return try await storeCall { try await summaries.get(maxAge: TimeInterval(maxAge)) { try await queries.fleetSummary() } }
        }
    }
}
