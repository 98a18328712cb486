import Crypto

/// Pseudonymous box ids for exports (docs/ratings-method.md, "Privacy"): HMAC-SHA256 of the box id under a
/// key for the export period, in lowercase hex. Without the key, ids cannot be traced back to boxes, nor
/// linked across periods with different keys.
public enum PseudonymousID {
    /// HMAC-SHA256(`periodKey`, UTF-8 `boxId`), as 64 lowercase hex digits.
    public static func make(boxId: String, periodKey: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(boxId.utf8), using: SymmetricKey(data: periodKey))
        return hex(Array(mac))
    }

    /// A period's key derived from a master secret: HMAC-SHA256(`master`, "argus-ratings-export:" + `period`),
    /// e.g. period `2026-12`. The hub keeps the master secret; a leaked period key exposes one period only.
    public static func periodKey(master: [UInt8], period: String) -> [UInt8] {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array(("argus-ratings-export:" + period).utf8), using: SymmetricKey(data: master))
        return Array(mac)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
