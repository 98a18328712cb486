import ArgusSupport
import Crypto
import Foundation

/// Secrets and their hashes. Device secrets and API tokens are 256-bit random values, so a
/// single SHA-256 is a sound verifier (no password stretching is needed for random keys).
/// Only the hash is stored; comparisons run in constant time.
package enum Secrets {
    /// A new random secret: 32 bytes, base64url without padding (43 characters).
    package static func generate(prefix: String = "") -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return prefix + base64url(bytes)
    }

    /// Random hex of `bytes` bytes, for public ids (sessions, token ids).
    package static func randomHex(bytes: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
    }

    /// `sha256:` and the lowercase hex digest of the UTF-8 text.
    package static func hash(_ secret: String) -> String {
        // Hex by table: `String(format:)` per byte cost more than the digest itself, and a
        // batch registration hashes 1,000 secrets per request.
        var out = Array("sha256:".utf8)
        out.reserveCapacity(7 + 64)
        for b in sha256(secret) {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The raw SHA-256 of the UTF-8 text (what the credential cache keeps).
    package static func sha256(_ secret: String) -> [UInt8] { Array(SHA256.hash(data: Array(secret.utf8))) }

    /// SHA-256 of `bytes` in lowercase hex (content fingerprints, not secrets).
    package static func sha256Hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// True when `secret` hashes to `storedHash`. Runs in time independent of where they differ.
    package static func verify(_ secret: String, against storedHash: String) -> Bool {
        constantTimeEquals(Array(hash(secret).utf8), Array(storedHash.utf8))
    }

    package static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        let n = max(a.count, b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            diff |= x ^ y
        }
        return diff == 0
    }

    package static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Parses `Authorization: Basic base64(id:secret)`.
    package static func parseBasic(_ header: String) -> (id: String, secret: String)? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
            let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8),
            let colon = text.firstIndex(of: ":")
        else { return nil }
        let id = String(text[..<colon]), secret = String(text[text.index(after: colon)...])
        guard !id.isEmpty, !secret.isEmpty else { return nil }
        return (id, secret)
    }

    /// Parses `Authorization: Bearer <token>`.
    package static func parseBearer(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}
