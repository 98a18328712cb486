// A stock Hummingbird 2 WebSocket echo server, configured as its README shows. It is the peer
// that scripts/bench/connections measures beside the hub: the same clients, the same machine,
// the same run. Usage: HBEchoBench [port]
import Hummingbird
import HummingbirdWebSocket

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8090 : 8090
let router = Router()
router.get("/healthz") { _, _ in "ok" }
let wsRouter = Router(context: BasicWebSocketRequestContext.self)
wsRouter.ws("/v1/stb") { _, _ in
    .upgrade()
} onUpgrade: { inbound, outbound, _ in
    for try await message in inbound.messages(maxSize: 1 << 16) {
        if case .text(let text) = message { try await outbound.write(.text(text)) }
    }
}
let app = Application(
    router: router,
    server: .http1WebSocketUpgrade(webSocketRouter: wsRouter),
    configuration: .init(address: .hostname("127.0.0.1", port: port))
)
try await app.runService()
