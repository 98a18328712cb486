import ArgusStore
import ArgusSupport
import CommandRuntime
import Foundation
import HTTPTypes
import HubGateway
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers

/// Headers every operator API response carries, errors included: nothing is sniffed as
/// another type, and nothing (a token, a secret, a box's data) is kept by a cache.
package enum SafeHeaders {
    package static let fields: [(HTTPField.Name, String)] = [(.xContentTypeOptions, "nosniff"), (.cacheControl, "no-store")]
    package static func apply(_ headers: inout HTTPFields) {
        for (name, value) in fields where headers[name] == nil { headers[name] = value }
    }
}

/// The outermost middleware of the operator API:
/// - adds ``SafeHeaders`` to every response, and to every error turned into one;
/// - counts every refusal (4xx, 5xx) by status in `argus_api_refusals_total`;
/// - audits every refusal of a write request (any method but GET/HEAD/OPTIONS) that its
///   route did not audit itself, and every 403, with the status and the reason given;
/// - never audits a 401: there is no caller to name, and a brute force must not flood the
///   audit log. 401s are counted in `argus_api_unauthorized_total` and logged at most once
///   per 10 s.
package struct RefusalAuditMiddleware: RouterMiddleware {
    package typealias Context = HubRequestContext
    package let audit: AuditLog
    package let logger: Logger
    package let unauthorizedLog = RateLimitedLog()
    package let unauthorized = Counter(label: "argus_api_unauthorized_total")

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            if response.status.code >= 400 {
                await refused(request, context, status: response.status, reason: "")
            }
            SafeHeaders.apply(&response.headers)
            return response
        } catch let error as HTTPResponseError {
            var response = try error.response(from: request, context: context)
            let reason = (error as? HTTPError)?.body ?? ""
            await refused(request, context, status: response.status, reason: reason)
            SafeHeaders.apply(&response.headers)
            return response
        } catch {
            // Hummingbird would answer 500; say so in the same shape, and keep it.
            context.logger.error("request failed", metadata: [LogKey.error: .string("\(error)")])
            var response = try HTTPError(.internalServerError, message: "internal error").response(from: request, context: context)
            await refused(request, context, status: .internalServerError, reason: "internal error")
            SafeHeaders.apply(&response.headers)
            return response
        }
    }

    private func refused(_ request: Request, _ context: Context, status: HTTPResponse.Status, reason: String) async {
        Counter(label: "argus_api_refusals_total", dimensions: [("status", String(status.code))]).increment()
        if status == .unauthorized {
            unauthorized.increment()
            unauthorizedLog.event { folded in
                logger.notice(
                    "API request refused: no valid token",
                    metadata: [
                        LogKey.httpPath: .string(request.uri.path), LogKey.httpRemote: .string(context.remote ?? "-"),
                        LogKey.refusalsFolded: .stringConvertible(folded),
                    ])
            }
            return
        }
        let write = ![.get, .head, .options].contains(request.method)
        guard write || status == .forbidden, !context.trail.audited, let who = context.trail.principal else { return }
        await audit.record(
            who, action: "api.refused", target: request.uri.path,
            parameters: ["method": request.method.rawValue],
            result: "refused \(status.code)" + (reason.isEmpty ? "" : ": \(reason)"))
    }
}

extension AuditLog {
    /// Records an action taken (or refused) by a route, and marks the request as audited so
    /// ``RefusalAuditMiddleware`` does not record it again.
    package func record(
        _ who: Principal, in context: HubRequestContext, action: String, target: String?,
        parameters: [String: String] = [:], result: String
    ) async {
        context.trail.markAudited()
        await record(who, action: action, target: target, parameters: parameters, result: result)
    }
}
