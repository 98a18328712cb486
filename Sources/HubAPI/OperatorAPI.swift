import ArgusStore
import ArgusSupport
import CommandRuntime
import Foundation
import HubGateway
import Hummingbird
import Logging
import MongoStore
import Prometheus
import RatingsRuntime
import RecommendRuntime
import STBProtocol

/// What the operator API's routes need.
package struct APIDependencies: Sendable {
    package let store: MongoStore
    package let devices: DeviceRepository
    package let tokens: TokenRepository
    package let audit: AuditLog
    package let registry: ConnectionRegistry
    package let capacity: ConnectionCapacity
    package let gate: ReadinessGate
    package let node: String
    package let metrics: PrometheusCollectorRegistry
    /// Told about revocations, so a revoked box cannot use the outage fallback.
    package var authenticator: DeviceAuthenticator? = nil
    /// Operators' live views, told about alarm changes.
    package var live: LiveHub? = nil
    /// Command jobs; the command routes exist only with it.
    package var commands: CommandService? = nil
    package var rollouts: RolloutService? = nil
    /// Viewing ratings; the ratings route exists only with it.
    package var ratings: RatingsService? = nil
    /// Recommendations; their routes exist only with it.
    package var recommendations: RecommendService? = nil
    /// The operator console's files, served at `/console`; nil: no console.
    package var console: ConsoleAssets? = nil
    /// Base URL of this hub for firmware downloads.
    package var publicURL: String = "http://127.0.0.1:8080"

    package init(
        store: MongoStore, devices: DeviceRepository, tokens: TokenRepository, audit: AuditLog, registry: ConnectionRegistry, capacity: ConnectionCapacity,
        gate: ReadinessGate, node: String, metrics: PrometheusCollectorRegistry, authenticator: DeviceAuthenticator? = nil, live: LiveHub? = nil,
        commands: CommandService? = nil, rollouts: RolloutService? = nil, publicURL: String = "http://127.0.0.1:8080"
    ) {
        self.store = store
        self.devices = devices
        self.tokens = tokens
        self.audit = audit
        self.registry = registry
        self.capacity = capacity
        self.gate = gate
        self.node = node
        self.metrics = metrics
        self.authenticator = authenticator
        self.live = live
        self.commands = commands
        self.rollouts = rollouts
        self.publicURL = publicURL
    }
}

// MARK: - Bodies and views

package struct RegisterDeviceRequest: Decodable {
    package var id: String
    package var model: String
    package var tags: [String]?
}

package struct RegisteredDevice: ResponseEncodable {
    package var id: String
    package var model: String
    package var tags: [String]
    /// Shown once; the hub keeps only its hash.
    package var secret: String
}

package struct DevicePage: ResponseEncodable {
    package var items: [DeviceView]
    /// Pass as `cursor` for the next page; absent on the last page (and with `sort`/`offset`/`q`).
    package var nextCursor: String?
    /// With `sort`, `offset` or `q`: pass as `offset` for the next page; absent on the last.
    package var nextOffset: Int? = nil
}

package struct DeviceCount: ResponseEncodable {
    package var count: Int
}

package struct CreateTokenRequest: Decodable {
    package var name: String
    package var role: String
}

package struct CreatedToken: ResponseEncodable {
    package var id: String
    package var name: String
    package var role: Role
    /// Shown once; the hub keeps only its hash.
    package var token: String
}

package struct TokenList: ResponseEncodable { var items: [TokenView] }
package struct AuditPage: ResponseEncodable { var items: [AuditEntryView] }

package struct Health: ResponseEncodable {
    package var status: String
    package var node: String
    package var store: String
    package var sessions: Int
    package var connectionCap: Int
}

/// Builds the operator API: `/healthz`, `/metrics` and the token-protected `/api/v1`, each of
/// whose routes has its row in ``AccessMatrix``.
package enum OperatorAPI {
    package static func router(_ deps: APIDependencies) -> Router<HubRequestContext> {
        let router = Router(context: HubRequestContext.self)
        router.add(middleware: RefusalAuditMiddleware(audit: deps.audit, logger: Logger(label: "argus.api")))
        router.add(middleware: TokenAuthMiddleware(tokens: deps.tokens))
        router.add(middleware: AccessMiddleware(logger: Logger(label: "argus.api")))

        router.get("/healthz") { _, _ -> Response in
            let ready = deps.gate.isOpen
            let h = Health(
                status: ready ? "ok" : "starting", node: deps.node, store: ready ? "up" : "waiting",
                sessions: deps.registry.sessionCount, connectionCap: deps.capacity.cap)
            let body = try JSONEncoder().encode(h)
            return Response(
                status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }

        router.get("/metrics") { _, _ -> Response in
            var out: [UInt8] = []
            deps.metrics.emit(into: &out)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: out)))
        }

        if let console = deps.console { ConsoleRoutes.add(router, console) }
        let api = router.group("api/v1")
        AccessRoutes.add(api)
        addDeviceRoutes(api, deps)
        ConsoleSupportRoutes.add(api, deps, deps.commands)
        DeviceBatch.add(api, deps)
        addTokenRoutes(api, deps)
        addTelemetryRoutes(api, deps)
        LiveRoute.addFallbackRoute(api)
        addAlarmRoutes(api, deps)
        if let ratings = deps.ratings { RatingsRoutes.add(api, deps, ratings) }
        if let recommendations = deps.recommendations { RecommendRoutes.add(api, deps, recommendations) }
        if let commands = deps.commands {
            let firmware = FirmwareRepository(store: deps.store)
            CommandRoutes.add(api, deps, commands, firmware)
            FirmwareRoutes.add(router, api, deps, firmware, publicURL: deps.publicURL)
            if let rollouts = deps.rollouts { RolloutRoutes.add(api, deps, rollouts) }
        }
        api.get("audit") { request, context -> AuditPage in
            let limit = try Validate.int(request, "limit", default: 100, range: 1...1000)
            var before: Date? = nil
            if let b = request.uri.queryParameters.get("before") {
                guard let d = Validate.isoTime(String(b)) else {
                    throw HTTPError(.badRequest, message: "before must be an ISO 8601 time")
                }
                before = d
            }
            let items = try await storeCall {
                try await deps.audit.list(
                    actor: request.uri.queryParameters.get("actor").map { String($0) },
                    action: request.uri.queryParameters.get("action").map { String($0) },
                    before: before, limit: limit)
            }
            return AuditPage(items: items.map(AuditEntryView.init))
        }
        // Every /api/ route needs its row in the access matrix: ``AccessMiddleware`` refuses
        // one without, and the hub does not start with one (a programming error).
        let unlisted = AccessMatrix.unlisted(router.routes.map { (method: $0.method, path: $0.path.description) })
        precondition(unlisted.isEmpty, "routes without an access rule in AccessMatrix: \(unlisted.joined(separator: ", "))")
        return router
    }

    package static func addDeviceRoutes(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies) {
        api.post("devices") { request, context -> EditedResponse<RegisteredDevice> in
            let who = try context.caller()
            let body = try await Validate.body(RegisterDeviceRequest.self, request, context)
            let id = try Validate.identifier(body.id, field: "id")
            let model = try Validate.identifier(body.model, field: "model")
            let tags = try (body.tags ?? []).map { try Validate.identifier($0, field: "tags[]", max: 32) }
            guard tags.count <= 16 else { throw HTTPError(.badRequest, message: "at most 16 tags") }
            let secret = Secrets.generate()
            do {
                _ = try await deps.devices.register(id: id, model: model, tags: tags, secretHash: Secrets.hash(secret), now: Date())
            } catch let e as MongoStoreError where e.kind == .duplicateKey {
                await deps.audit.record(who, in: context, action: "device.register", target: id, parameters: ["model": model], result: "conflict")
                throw HTTPError(.conflict, message: "device \(id) is already registered")
            } catch {
                throw storeUnavailable(error, context)
            }
            await deps.audit.record(
                who, in: context, action: "device.register", target: id,
                parameters: ["model": model, "tags": tags.joined(separator: ",")], result: "ok")
            return EditedResponse(status: .created, response: RegisteredDevice(id: id, model: model, tags: tags, secret: secret))
        }

        api.get("devices") { request, context -> DevicePage in
            let q = request.uri.queryParameters
            let filter = DeviceFilter(
                online: try Validate.bool(request, "online"),
                model: q.get("model").map { String($0) }, firmware: q.get("firmware").map { String($0) },
                tag: q.get("tag").map { String($0) })
            let limit = try Validate.int(request, "limit", default: 100, range: 1...1000)
            let search = try searchParameter(request)
            if q.get("sort") != nil || q.get("offset") != nil || search != nil {
                // The console's list: sorted and paged by offset on the server.
                guard q.get("cursor") == nil else { throw HTTPError(.badRequest, message: "cursor cannot be combined with sort, offset or q") }
                let sortName = q.get("sort").map { String($0) } ?? "id"
                guard let sort = DeviceRepository.ListSort(rawValue: sortName) else {
                    throw HTTPError(.badRequest, message: "sort must be one of \(DeviceRepository.ListSort.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let offset = try Validate.int(request, "offset", default: 0, range: 0...1_000_000)
                let page = try await storeCall { try await deps.devices.page(filter, search: search, sort: sort, skip: offset, limit: limit) }
                return DevicePage(items: page.items.map(DeviceView.init), nextCursor: nil, nextOffset: page.more ? offset + limit : nil)
            }
            let cursor = q.get("cursor").map { String($0) }
            let page = try await storeCall { try await deps.devices.list(filter, after: cursor, limit: limit) }
            return DevicePage(items: page.items.map(DeviceView.init), nextCursor: page.next)
        }

        api.get("devices:count") { request, context -> DeviceCount in
            let q = request.uri.queryParameters
            let filter = DeviceFilter(
                online: try Validate.bool(request, "online"),
                model: q.get("model").map { String($0) }, firmware: q.get("firmware").map { String($0) },
                tag: q.get("tag").map { String($0) })
            let search = try searchParameter(request)
            return DeviceCount(count: try await storeCall { try await deps.devices.count(filter, search: search) })
        }

        api.get("devices/{id}") { _, context -> DeviceView in
            let id = try context.parameters.require("id")
            guard let d = try await storeCall({ try await deps.devices.get(id) }) else {
                throw HTTPError(.notFound, message: "no device \(id)")
            }
            return DeviceView(d)
        }

        api.post("devices/{id}/revoke") { _, context -> Response in
            let who = try context.caller()
            let id = try context.parameters.require("id")
            let found = try await storeCall { try await deps.devices.revoke(id, now: Date()) }
            guard found else {
                await deps.audit.record(who, in: context, action: "device.revoke", target: id, result: "not_found")
                throw HTTPError(.notFound, message: "no device \(id)")
            }
            deps.authenticator?.forget(id)
            if let s = deps.registry.session(for: id) { s.close(.revoked) }
            await deps.audit.record(who, in: context, action: "device.revoke", target: id, result: "ok")
            return Response(status: .noContent)
        }
    }

    /// `q`: a free search, a prefix of a box's id (its serial) or address; at most 64 characters.
    package static func searchParameter(_ request: Request) throws -> String? {
        guard let raw = request.uri.queryParameters.get("q").map({ String($0) }), !raw.isEmpty else { return nil }
        // Counted in code points, as JSON Schema's maxLength counts (a combining mark is one).
        guard raw.unicodeScalars.count <= 64, !raw.contains(where: { $0.isNewline || $0 == "\u{0}" }) else {
            throw HTTPError(.badRequest, message: "q must be at most 64 characters (code points) on one line")
        }
        return raw
    }

    package static func addTokenRoutes(_ api: RouterGroup<HubRequestContext>, _ deps: APIDependencies) {
        api.post("tokens") { request, context -> EditedResponse<CreatedToken> in
            let who = try context.caller()
            let body = try await Validate.body(CreateTokenRequest.self, request, context)
            let name = try Validate.identifier(body.name, field: "name")
            guard let role = Role(rawValue: body.role) else {
                throw HTTPError(.badRequest, message: "role must be one of \(Role.names)")
            }
            let created = try await storeCall { try await deps.tokens.create(name: name, role: role, createdBy: who.name, now: Date()) }
            await deps.audit.record(
                who, in: context, action: "token.create", target: created.record.id,
                parameters: ["name": name, "role": role.rawValue], result: "ok")
            return EditedResponse(status: .created, response: CreatedToken(id: created.record.id, name: name, role: role, token: created.token))
        }

        api.get("tokens") { _, context -> TokenList in
            return TokenList(items: try await storeCall { try await deps.tokens.list() }.map(TokenView.init))
        }

        api.delete("tokens/{id}") { _, context -> Response in
            let who = try context.caller()
            let id = try context.parameters.require("id")
            let found = try await storeCall { try await deps.tokens.revoke(id: id, now: Date()) }
            await deps.audit.record(who, in: context, action: "token.revoke", target: id, result: found ? "ok" : "not_found")
            guard found else { throw HTTPError(.notFound, message: "no token \(id)") }
            return Response(status: .noContent)
        }
    }

    /// Runs a store call; a store failure becomes 503 with the driver text kept out of the response.
    package static func storeCall<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let e as HTTPError { throw e } catch let e as BSONDecodingError { throw unreadable(e) } catch {
            throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"], message: "the store is unavailable; retry shortly")
        }
    }

    /// A stored document this hub cannot decode: a 500 naming it (retrying will not help).
    package static func unreadable(_ e: BSONDecodingError) -> HTTPError {
        HTTPError(.internalServerError, message: "a stored document cannot be read: \(e)")
    }

    package static func storeUnavailable(_ error: Error, _ context: HubRequestContext) -> HTTPError {
        if let e = error as? BSONDecodingError { return unreadable(e) }
        context.logger.warning("store call failed", metadata: [LogKey.error: .string("\(error)")])
        return HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"], message: "the store is unavailable; retry shortly")
    }
}
