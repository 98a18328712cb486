import Foundation

/// The hub's wall clock for what it stamps on what boxes send (receive times, the clock offset
/// measured at `hello`, `serverTime`) and for what the ratings builder takes as now.
///
/// Real time, unless the hub runs a simulation (`--clock-speed X`, docs/operations.md): then
/// simulated time starts at `startMillis` when the hub starts and runs `speed` times faster,
/// as the fleet simulator's does (`stb-agent --clock-speed X`). A box's clock and the hub's then
/// run at the same speed, so the offset measured at `hello` stays right and a simulated fleet's
/// days are credited like real ones. Timers, leases and deadlines keep real time.
public struct HubClock: Sendable {
    public let speed: Double
    let realOrigin: Int64
    let simulatedOrigin: Int64

    /// Real time.
    public static let real = HubClock(speed: 1, startMillis: 0, realOrigin: 0)

    /// Simulated time: `startMillis` at `realOrigin` (now by default), `speed` times faster.
    public init(speed: Double, startMillis: Int64, realOrigin: Int64 = HubClock.realMillis()) {
        self.speed = speed
        self.simulatedOrigin = startMillis
        self.realOrigin = realOrigin
    }

    public var isSimulated: Bool { speed != 1 || simulatedOrigin != realOrigin }

    /// Milliseconds since the Unix epoch on this clock.
    public func nowMillis() -> Int64 {
        let real = Self.realMillis()
        guard isSimulated else { return real }
        return simulatedOrigin + Int64((Double(real - realOrigin) * speed).rounded())
    }

    public static func realMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
