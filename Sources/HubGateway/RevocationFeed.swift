import ArgusStore
import ArgusSupport
import Foundation
import Logging
import MongoStore
import ServiceLifecycle

/// Carries device revocations to this node: the box leaves the credential cache and, if it
/// is connected here, is closed with 4001.
///
/// The revoking node does both at once. The others hear of it from the change stream on
/// `revocations` within milliseconds; when no change stream is available (a store without a
/// replica set, or one that failed) they poll every `pollInterval` (default 2 s). Every
/// stream (re)start first polls what it may have missed, so the bound is the poll interval
/// plus one store read, documented as 5 s.
package final class RevocationFeed: Service, Sendable {
    package let devices: DeviceRepository
    package let authenticator: DeviceAuthenticator
    package let registry: ConnectionRegistry
    package let useChangeStream: Bool
    package let pollInterval: Duration
    package let gate: ReadinessGate?
    package let logger: Logger

    package init(
        devices: DeviceRepository, authenticator: DeviceAuthenticator, registry: ConnectionRegistry, useChangeStream: Bool,
        pollInterval: Duration = .seconds(2), gate: ReadinessGate?, logger: Logger
    ) {
        self.devices = devices
        self.authenticator = authenticator
        self.registry = registry
        self.useChangeStream = useChangeStream
        self.pollInterval = pollInterval
        self.gate = gate
        self.logger = logger
    }

    package func run() async throws {
        if let gate {
            guard await cancelWhenGracefulShutdown({ await gate.wait() }) == true else { return }
        }
        await cancelWhenGracefulShutdown { await self.loop() }
    }

    /// Applies one revocation on this node.
    package func apply(_ device: String) {
        authenticator.forget(device)
        if let s = registry.session(for: device) { s.close(.revoked) }
    }

    private func loop() async {
        // A margin for clock skew between nodes; applying a revocation twice is harmless.
        var since = Date().addingTimeInterval(-60)
        while !Task.isCancelled {
            if useChangeStream {
                let stream = devices.revocations.watch(
                    [["$match": ["operationType": "insert"]]],
                    options: WatchOptions(fullDocument: true, maxAwaitMilliseconds: 500))
                do {
                    since = try await pollOnce(since: since)
                    for try await event in stream {
                        if let d = event["fullDocument"]?.documentValue?["device"]?.stringValue { apply(d) }
                    }
                } catch {
                    stream.stop()
                    logger.warning(
                        "revocations change stream unavailable; polling for 30 s before retrying",
                        metadata: [LogKey.error: .string("\(error)")])
                    let until = ContinuousClock.now + .seconds(30)
                    while !Task.isCancelled && ContinuousClock.now < until {
                        since = (try? await pollOnce(since: since)) ?? since
                        try? await Task.sleep(for: pollInterval)
                    }
                }
            } else {
                since = (try? await pollOnce(since: since)) ?? since
                try? await Task.sleep(for: pollInterval)
            }
        }
    }

    private func pollOnce(since: Date) async throws -> Date {
        let started = Date()
        var last = since
        for r in try await devices.revocations(since: since) {
            apply(r.device)
            last = max(last, r.at)
        }
        // Next poll from a little before now (clock skew), but never before what was seen.
        return max(last, started.addingTimeInterval(-5))
    }
}
