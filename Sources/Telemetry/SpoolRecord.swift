/// One accepted telemetry frame as the spool keeps it: who sent it, which boot, when it
/// arrived, and the frame's bytes exactly as received (JSON: one message or a `batch`).
///
/// On disk a record is `[u32 length][u32 crc32][payload]`, little-endian; the payload is
/// `[i64 receivedAt ms][i64 clock offset ms, if bit 63 of the first field is set][u16 n][device id]
/// [u16 n][boot id][frame]`. Records written before the offset existed have bit 63 clear and
/// read with no offset. A reader stops at the first record that is short or fails its checksum:
/// only a write that was never acknowledged can be torn.
public struct SpoolRecord: Sendable, Equatable {
    public var deviceID: String
    public var bootId: String
    public var receivedAt: Int64
    /// The session's clock offset (hub receive time of `hello` − `hello`'s `ts`), for ratings.
    public var clockOffsetMs: Int64?
    public var frame: [UInt8]

    public init(deviceID: String, bootId: String, receivedAt: Int64, clockOffsetMs: Int64? = nil, frame: [UInt8]) {
        self.deviceID = deviceID
        self.bootId = bootId
        self.receivedAt = receivedAt
        self.clockOffsetMs = clockOffsetMs
        self.frame = frame
    }

    private static let offsetFlag: UInt64 = 1 << 63

    /// Bytes this record takes on disk.
    public var encodedSize: Int { 8 + 8 + (clockOffsetMs == nil ? 0 : 8) + 2 + deviceID.utf8.count + 2 + bootId.utf8.count + frame.count }

    /// Appends the framed record to `out`.
    public func encode(into out: inout [UInt8]) {
        var payload: [UInt8] = []
        payload.reserveCapacity(encodedSize - 8)
        if let clockOffsetMs {
            Self.put(UInt64(bitPattern: receivedAt) | Self.offsetFlag, 8, &payload)
            Self.put(UInt64(bitPattern: clockOffsetMs), 8, &payload)
        } else {
            Self.put(UInt64(bitPattern: receivedAt), 8, &payload)
        }
        Self.put(UInt64(deviceID.utf8.count), 2, &payload)
        payload.append(contentsOf: deviceID.utf8)
        Self.put(UInt64(bootId.utf8.count), 2, &payload)
        payload.append(contentsOf: bootId.utf8)
        payload.append(contentsOf: frame)
        Self.put(UInt64(payload.count), 4, &out)
        Self.put(UInt64(CRC32.checksum(payload)), 4, &out)
        out.append(contentsOf: payload)
    }

    /// Decodes every whole, valid record in `bytes`, in order; stops at the first bad one.
    public static func decodeAll(_ bytes: [UInt8]) -> (records: [SpoolRecord], validBytes: Int) {
        var out: [SpoolRecord] = []
        var i = 0
        while i + 8 <= bytes.count {
            let len = Int(get(bytes, i, 4)), crc = UInt32(get(bytes, i + 4, 4))
            let start = i + 8
            guard len >= 12, start + len <= bytes.count else { break }
            let payload = bytes[start..<(start + len)]
            guard CRC32.checksum(payload) == crc else { break }
            var p = start
            let first = get(bytes, p, 8); p += 8
            var offset: Int64? = nil
            if first & offsetFlag != 0 {
                guard p + 8 <= start + len else { break }
                offset = Int64(bitPattern: get(bytes, p, 8)); p += 8
            }
            let receivedAt = Int64(bitPattern: first & ~offsetFlag)
            let idLen = Int(get(bytes, p, 2)); p += 2
            guard p + idLen + 2 <= start + len else { break }
            let id = String(decoding: bytes[p..<(p + idLen)], as: UTF8.self); p += idLen
            let bootLen = Int(get(bytes, p, 2)); p += 2
            guard p + bootLen <= start + len else { break }
            let boot = String(decoding: bytes[p..<(p + bootLen)], as: UTF8.self); p += bootLen
            out.append(SpoolRecord(deviceID: id, bootId: boot, receivedAt: receivedAt, clockOffsetMs: offset, frame: Array(bytes[p..<(start + len)])))
            i = start + len
        }
        return (out, i)
    }

    private static func put(_ v: UInt64, _ n: Int, _ out: inout [UInt8]) {
        for k in 0..<n { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
    }

    private static func get(_ b: [UInt8], _ at: Int, _ n: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<n { v |= UInt64(b[at + k]) << (8 * UInt64(k)) }
        return v
    }
}

/// CRC-32 (IEEE 802.3), for spool records.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
