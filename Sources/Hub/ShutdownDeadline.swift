import ArgusStore
import ArgusSupport
import CommandRuntime
import Dispatch
import Foundation
import HubAPI
import HubGateway
import Logging
import ServiceLifecycle

/// Bounds the whole shutdown: once SIGTERM (or SIGINT) starts the graceful shutdown, the
/// process exits 0 after `seconds` even if a store call is stuck, since systemd and
/// Kubernetes kill it soon after anyway. Nothing acknowledged is lost by that: telemetry was
/// fsync'd to the spool before its ack and is applied at the next start, and presence is
/// repaired at start (the node's boxes are marked offline).
///
/// Registered last in the service group, so it hears of the shutdown first and returns at
/// once, leaving a timer on a Dispatch queue (not the cooperative pool, which a stuck
/// shutdown may starve).
package struct ShutdownDeadline: Service {
    package let seconds: Int
    package let logger: Logger

    package init(seconds: Int, logger: Logger) {
        self.seconds = seconds
        self.logger = logger
    }

    package func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            return  // cancelled: the group is already ending
        }
        let logger = self.logger
        let seconds = self.seconds
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(max(500, seconds * 1000 - 300))) {
            logger.warning(
                "drain deadline reached; exiting now (what was not written is repaired at the next start)",
                metadata: [LogKey.drainTimeoutSeconds: .stringConvertible(seconds)])
            exit(0)
        }
    }
}
