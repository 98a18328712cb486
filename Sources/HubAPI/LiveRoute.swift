import ArgusStore
import ArgusSupport
import CommandRuntime
import Foundation
import HTTPTypes
import HubGateway
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore

/// The operator live view: `GET /api/v1/live?device=ID` streams one box's telemetry as it
/// arrives; `GET /api/v1/live?fleet=1` streams fleet counters once a second. The token is
/// sent as `Authorization: Bearer` or, for browsers, as `?token=`. Every subscription is
/// audited. A subscriber that cannot keep up is closed with 1008.
package enum LiveRoute {
    package static let path = "/api/v1/live"

    package static func shouldUpgrade(
        _ request: HTTPRequest, deps: APIDependencies, live: LiveHub
    ) async throws
        -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>>
    {
        let target = request.path ?? ""
        let parts = target.split(separator: "?", maxSplits: 1)
        guard parts.first.map(String.init) == path else { return .dontUpgrade }
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { query[String(kv[0])] = String(kv[1]).removingPercentEncoding ?? String(kv[1]) }
            }
        }
        let token = request.headerFields[.authorization].flatMap(Secrets.parseBearer) ?? query["token"]
        // Anything not allowed falls through to the plain route, which answers 401/400/426.
        guard let token, let who = try? await deps.tokens.authenticate(token) else { return .dontUpgrade }
        // Each stream's roles are its row of the access matrix. One box's telemetry includes
        // its viewing: personal data, for operators (audited below); others see aggregates.
        let topic: LiveHub.Topic
        if let d = query["device"], (try? Validate.identifier(d, field: "device")) != nil {
            guard AccessMatrix.stream("device")?.allows(who.role) == true else { return .dontUpgrade }
            topic = .device(d)
        } else if query["fleet"] != nil {
            guard AccessMatrix.stream("fleet")?.allows(who.role) == true else { return .dontUpgrade }
            topic = .fleet
        } else {
            return .dontUpgrade
        }
        let targetName: String = if case .device(let d) = topic { d } else { "fleet" }
        await deps.audit.record(who, action: "live.subscribe", target: targetName, result: "ok")
        return .upgrade([:]) { inbound, outbound, _ in
            let subscription = live.subscribe(topic)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await _ in inbound {}  // the operator closed, or went away
                }
                group.addTask {
                    for await text in subscription.stream {
                        if subscription.isDropped { break }  // skip the backlog: the close goes next
                        try await outbound.write(.text(text))
                    }
                    if !Task.isCancelled { try await outbound.close(.policyViolation, reason: "subscriber too slow; dropped") }
                }
                _ = try await group.next()
                group.cancelAll()
            }
        }
    }

    /// The plain-HTTP side of `/api/v1/live`: explains what is wrong.
    package static func addFallbackRoute(_ api: RouterGroup<HubRequestContext>) {
        api.get("live") { request, context -> Response in
            let q = request.uri.queryParameters
            let device = q.get("device").map { String($0) }
            guard device != nil || q.get("fleet") != nil else { throw HTTPError(.badRequest, message: "pass device=ID or fleet=1") }
            // A stream missing from the matrix is refused to everyone, like a route.
            guard let stream = AccessMatrix.stream(device == nil ? "fleet" : "device") else {
                throw HTTPError(.forbidden, message: "this live stream has no access rule; it is refused to every role")
            }
            _ = try context.check(stream)
            if let device { _ = try Validate.identifier(device, field: "device") }
            throw HTTPError(.upgradeRequired, message: "the live view is a WebSocket; connect with an Upgrade request")
        }
    }
}
