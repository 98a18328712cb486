#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Staged firmware rollouts: the maintenance window a box must be in (see Rollout.swift for the whole)

// MARK: - Maintenance window

/// When a box may start an install: its local time of day is in [startMinute, endMinute), and,
/// if asked, it is in standby or has not been watched for a while.
///
/// The window may wrap past midnight (`1380..<240` is 23:00–04:00); `startMinute == endMinute`
/// means the whole day (then only the standby and idle rules apply). When both
/// `requireStandby` and `idleMinutes` are set, either condition suffices: a box in standby, or
/// one nobody has watched for `idleMinutes`.
public struct MaintenanceWindow: Sendable, Equatable, Codable {
    /// Minutes after local midnight, 0..<1440; the window includes it.
    public let startMinute: Int
    /// Minutes after local midnight, 0..<1440; the window ends just before it.
    public let endMinute: Int
    /// The box must be in standby (or idle, if `idleMinutes` is set too).
    public let requireStandby: Bool
    /// The box must have had no viewing for this many minutes (or be in standby, if
    /// `requireStandby` is set too). A box never watched counts as idle.
    public let idleMinutes: Int?

    public init(startMinute: Int, endMinute: Int, requireStandby: Bool = false, idleMinutes: Int? = nil) throws(CommandError) {
        guard (0..<1440).contains(startMinute) else {
            throw CommandError("window.startMinute must be in 0..<1440 (minutes after local midnight), got \(startMinute)", field: "window.startMinute")
        }
        guard (0..<1440).contains(endMinute) else {
            throw CommandError("window.endMinute must be in 0..<1440 (minutes after local midnight), got \(endMinute)", field: "window.endMinute")
        }
        if let idleMinutes, !(1...10_080).contains(idleMinutes) {
            throw CommandError("window.idleMinutes must be in 1...10080 (a week), got \(idleMinutes)", field: "window.idleMinutes")
        }
        self.startMinute = startMinute
        self.endMinute = endMinute
        self.requireStandby = requireStandby
        self.idleMinutes = idleMinutes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            startMinute: c.decode(Int.self, forKey: .startMinute),
            endMinute: c.decode(Int.self, forKey: .endMinute),
            requireStandby: c.decodeIfPresent(Bool.self, forKey: .requireStandby) ?? false,
            idleMinutes: c.decodeIfPresent(Int.self, forKey: .idleMinutes))
    }

    /// Minutes after local midnight (0..<1440) at `nowMillis` (Unix epoch) for a box whose
    /// local time is UTC + `utcOffsetMinutes`.
    public static func localMinute(nowMillis: Int64, utcOffsetMinutes: Int) -> Int {
        let minutes = floorDiv(nowMillis, 60_000) + Int64(utcOffsetMinutes)
        let m = minutes % 1440
        return Int(m < 0 ? m + 1440 : m)
    }

    /// Whether the local minute of day is inside the window.
    public func contains(localMinute m: Int) -> Bool {
        if startMinute == endMinute { return true }
        if startMinute < endMinute { return m >= startMinute && m < endMinute }
        return m >= startMinute || m < endMinute  // wraps past midnight
    }

    /// Whether a box may start an install now. `lastViewingMillis` is when it was last watched
    /// (nil: never).
    public func allows(nowMillis: Int64, utcOffsetMinutes: Int, inStandby: Bool, lastViewingMillis: Int64?) -> Bool {
        guard contains(localMinute: Self.localMinute(nowMillis: nowMillis, utcOffsetMinutes: utcOffsetMinutes)) else { return false }
        guard requireStandby || idleMinutes != nil else { return true }
        if requireStandby && inStandby { return true }
        if let idleMinutes {
            guard let last = lastViewingMillis else { return true }
            return nowMillis - last >= Int64(idleMinutes) * 60_000
        }
        return false
    }
}

private func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}
