import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The operator console's files (`dashboards/console`: HTML, ES modules, CSS), read once when
/// the hub starts and served from memory at `/console`, and Chart.js from Debian's
/// `libjs-chart.js` at `/console/vendor/chart.min.js`. Nothing is read from disk per request,
/// so a request path can never reach a file outside the directory.
package struct ConsoleAssets: Sendable {
    package struct File: Sendable {
        package var contentType: String
        package var bytes: ByteBuffer
    }

    /// Relative path (`app.js`, `pages/fleet.js`) → file.
    package let files: [String: File]
    package let directory: String

    /// Types the console ships; any other file in the directory is not served.
    static let types: [String: String] = [
        "html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
        "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon", "json": "application/json",
    ]
    /// Where Debian's `libjs-chart.js` puts Chart.js (a UMD build: `window.Chart`).
    package static let chartJSPaths = ["/usr/share/javascript/chart.js/chart.min.js", "/usr/share/nodejs/chart.js/dist/chart.min.js"]
    /// Largest file read; the console's files are a few KiB each.
    static let maxFileBytes = 4 << 20

    /// Reads every servable file under `directory`, and Chart.js if it is installed.
    /// Throws when the directory cannot be read or has no `index.html`.
    package init(directory: String, chartJS: [String] = ConsoleAssets.chartJSPaths) throws {
        let fm = FileManager.default
        let root = URL(fileURLWithPath: directory).standardizedFileURL
        guard let walker = fm.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey]) else {
            throw ConsoleError(message: "cannot read the console directory \(directory)")
        }
        var files: [String: File] = [:]
        let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
        for case let url as URL in walker {
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey])
            guard values?.isRegularFile == true, (values?.fileSize ?? 0) <= Self.maxFileBytes,
                let type = Self.types[url.pathExtension.lowercased()]
            else { continue }
            let path = url.standardizedFileURL.path
            guard path.hasPrefix(prefix) else { continue }
            let data = try Data(contentsOf: url)
            files[String(path.dropFirst(prefix.count))] = File(contentType: type, bytes: ByteBuffer(bytes: data))
        }
        guard files["index.html"] != nil else { throw ConsoleError(message: "the console directory \(directory) has no index.html") }
        if files["vendor/chart.min.js"] == nil, let chart = chartJS.first(where: { fm.isReadableFile(atPath: $0) }),
            let data = try? Data(contentsOf: URL(fileURLWithPath: chart))
        {
            files["vendor/chart.min.js"] = File(contentType: Self.types["js"] ?? "text/javascript", bytes: ByteBuffer(bytes: data))
        }
        self.files = files
        self.directory = root.path
    }

    /// The default directory: `dashboards/console` under the working directory, else under
    /// the executable's directory or one of its parents (a build in `.build/debug` finds the
    /// checkout's), else `../share/argus/console` beside the executable. Nil when none exists.
    package static func defaultDirectory(executable: String = CommandLine.arguments.first ?? "") -> String? {
        let fm = FileManager.default
        var candidates = [fm.currentDirectoryPath + "/dashboards/console"]
        let exe = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? executable
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        candidates.append(dir.appendingPathComponent("../share/argus/console").standardizedFileURL.path)
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent("dashboards/console").path)
            dir = dir.deletingLastPathComponent()
        }
        return candidates.first { fm.fileExists(atPath: $0 + "/index.html") }
    }
}

package struct ConsoleError: Error, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}

/// `GET /console` (the page) and `GET /console/**` (its files), with a strict
/// Content-Security-Policy: scripts and styles only from the hub, no inline script, no
/// plugins, no framing; the live WebSocket only back to the same host.
package enum ConsoleRoutes {
    /// The policy; `connect-src` also names the WebSocket origin of the host asked.
    package static func contentSecurityPolicy(host: String?) -> String {
        var connect = "'self'"
        if let host, !host.isEmpty, host.count <= 255,
            host.allSatisfy({ $0.isLetter || $0.isNumber || ".-:[]".contains($0) }), host.allSatisfy(\.isASCII)
        {
            connect += " ws://\(host) wss://\(host)"
        }
        return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src \(connect); "
            + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    }

    package static func add<Context: RequestContext>(_ router: Router<Context>, _ assets: ConsoleAssets) {
        router.get("console") { request, _ -> Response in
            try respond(assets, "index.html", request)
        }
        router.get("console/**") { request, context -> Response in
            let path = context.parameters.getCatchAll().joined(separator: "/")
            return try respond(assets, path.isEmpty ? "index.html" : path, request)
        }
    }

    static func respond(_ assets: ConsoleAssets, _ path: String, _ request: Request) throws -> Response {
        guard let file = assets.files[path] else { throw HTTPError(.notFound, message: "no console file \(path)") }
        let headers: HTTPFields = [
            .contentType: file.contentType, .contentSecurityPolicy: contentSecurityPolicy(host: request.head.authority),
            .cacheControl: "no-cache",
        ]
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: file.bytes))
    }
}
