import ArgusStore
import ArgusSupport
import CommandRuntime
import Commands
import Foundation
import HubGateway
import Hummingbird
import MongoStore
import NIOConcurrencyHelpers
import STBProtocol
import Synchronization

/// The request context of the operator API: Hummingbird's core context plus the caller.
package struct HubRequestContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    /// Set by ``TokenAuthMiddleware`` for every `/api/` request that reaches a route.
    package var principal: Principal?

    /// What the middleware around the routes needs to know after them: the caller, and
    /// whether a route has audited the request itself. A reference, so what is set inside is
    /// seen outside.
    package let trail = RequestTrail()
    /// The peer's address, for logs.
    package let remote: String?

    package init(source: Source) {
        coreContext = .init(source: source)
        remote = source.channel.remoteAddress?.ipAddress
    }

    /// Operator bodies are small JSON documents.
    package var maxUploadSize: Int { 64 * 1024 }
}

/// Requires `Authorization: Bearer <token>` on every `/api/` route. There is no open API.
package struct TokenAuthMiddleware: RouterMiddleware {
    package typealias Context = HubRequestContext
    package let tokens: TokenRepository

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/api/") else { return try await next(request, context) }
        guard let header = request.headers[.authorization], let token = Secrets.parseBearer(header) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "an API token is required (Authorization: Bearer ...)")
        }
        let principal: Principal?
        do {
            principal = try await tokens.authenticate(token)
        } catch {
            context.logger.warning("token check failed", metadata: [LogKey.error: .string("\(error)")])
            throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"], message: "the store is unavailable; retry shortly")
        }
        guard let principal else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer error=\"invalid_token\""], message: "unknown or revoked API token")
        }
        var context = context
        context.principal = principal
        context.trail.principal = principal
        context.logger[metadataKey: LogKey.apiActor] = .string(principal.name)
        return try await next(request, context)
    }
}

/// Validation helpers with specific messages.
package enum Validate {
    /// An ISO 8601 internet time, with or without fractional seconds (``ISOTime``, which
    /// job deadlines use too).
    package static func isoTime(_ s: String) -> Date? { ISOTime.date(s) }

    /// An identifier: 1 to `max` characters of letters, digits and `._:-` (the same rule the
    /// gateway applies to a box's `hello`).
    package static func identifier(_ value: String, field: String, max: Int = 64) throws -> String {
        guard FrameCodec.isCatalogueName(value, max: max) else {
            throw HTTPError(.badRequest, message: "\(field) must be 1 to \(max) characters of letters, digits and ._:-")
        }
        return value
    }

    /// Decodes a JSON body, turning decoding failures into a 400 that names the field.
    package static func body<T: Decodable>(_ type: T.Type, _ request: Request, _ context: HubRequestContext) async throws -> T {
        try decode(type, try await collect(request, context))
    }

    /// The request's body, up to the context's limit (413 past it).
    package static func collect(_ request: Request, _ context: HubRequestContext) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: context.maxUploadSize)
        } catch {
            throw HTTPError(.contentTooLarge, message: "request body larger than \(context.maxUploadSize) bytes")
        }
    }

    /// Decodes a JSON body already read, turning decoding failures into a 400 that names the field.
    package static func decode<T: Decodable>(_ type: T.Type, _ buffer: ByteBuffer) throws -> T {
        // The same strict reading as /commands and the device protocol first: duplicate keys,
        // nesting deeper than 32 and invalid UTF-8 are refused, whatever the route.
        do { _ = try JSONParser.parse(buffer.readableBytesView) } catch {
            throw HTTPError(.badRequest, message: "body is not valid JSON: \(error.description)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let DecodingError.keyNotFound(key, _) {
            throw HTTPError(.badRequest, message: "missing field \(key.stringValue)")
        } catch let DecodingError.typeMismatch(_, ctx) {
            let path = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw HTTPError(.badRequest, message: path.isEmpty ? "body must be a JSON object" : "wrong type for \(path)")
        } catch let DecodingError.valueNotFound(_, ctx) {
            let path = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw HTTPError(.badRequest, message: path.isEmpty ? "body must be a JSON object" : "null for \(path)")
        } catch let DecodingError.dataCorrupted(ctx) {
            let path = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw HTTPError(.badRequest, message: path.isEmpty ? "body is not valid JSON" : "invalid value for \(path)")
        } catch {
            throw HTTPError(.badRequest, message: "body is not valid JSON")
        }
    }

    /// An optional query boolean: `true` or `false`.
    package static func bool(_ request: Request, _ name: String) throws -> Bool? {
        guard let v = request.uri.queryParameters.get(name) else { return nil }
        switch v {
        case "true": return true
        case "false": return false
        default: throw HTTPError(.badRequest, message: "\(name) must be true or false")
        }
    }

    /// An optional query integer within `range`.
    package static func int(_ request: Request, _ name: String, default def: Int, range: ClosedRange<Int>) throws -> Int {
        guard let v = request.uri.queryParameters.get(name) else { return def }
        guard let n = Int(v), range.contains(n) else {
            throw HTTPError(.badRequest, message: "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }
}

/// See ``HubRequestContext/trail``.
package final class RequestTrail: Sendable {
    private let state = Mutex<(principal: Principal?, audited: Bool)>((nil, false))
    package func markAudited() { state.withLock { $0.audited = true } }
    package var audited: Bool { state.withLock { $0.audited } }
    package var principal: Principal? {
        get { state.withLock { $0.principal } }
        set { state.withLock { $0.principal = newValue } }
    }
}
