/// A full check of roaring's portable format (github.com/RoaringBitmap/RoaringFormatSpec) before CRoaring reads the
/// bytes: CRoaring 0.2.66's `roaring_bitmap_portable_deserialize_safe` stays inside the buffer, but takes what it
/// reads on trust (unsorted values, overlapping runs, wrong counts), and a bitmap built on such bytes may misbehave
/// later. Only canonical containers pass (as CRoaring writes them): ascending keys and values, runs neither
/// overlapping nor touching, bitsets holding more than 4096 values.
enum PortableFormat {
    static let cookieWithRuns: UInt32 = 12347
    static let cookieNoRuns: UInt32 = 12346
    /// Containers of more than this many values are bitsets (unless runs).
    static let maxArrayCount = 4096
    /// With runs, fewer containers than this have no offset header.
    static let noOffsetThreshold = 4

    struct Reader {
        let bytes: [UInt8]
        var position = 0

        var atEnd: Bool { position == bytes.count }

        mutating func skip(_ n: Int) throws(BoxSet.DecodeError) {
            guard n <= bytes.count - position else { throw .truncated }
            position += n
        }

        mutating func u16() throws(BoxSet.DecodeError) -> UInt16 {
            guard bytes.count - position >= 2 else { throw .truncated }
            defer { position += 2 }
            return UInt16(bytes[position]) | UInt16(bytes[position + 1]) << 8
        }

        mutating func u32() throws(BoxSet.DecodeError) -> UInt32 {
            UInt32(try u16()) | UInt32(try u16()) << 16
        }

        mutating func u64() throws(BoxSet.DecodeError) -> UInt64 {
            UInt64(try u32()) | UInt64(try u32()) << 32
        }
    }

    /// Throws unless `bytes` are exactly one valid, canonical bitmap.
    static func validate(_ bytes: [UInt8]) throws(BoxSet.DecodeError) {
        var r = Reader(bytes: bytes)
        let cookie = try r.u32()
        let size: Int
        var runFlags: [UInt8] = []
        let hasRuns: Bool
        if cookie & 0xFFFF == cookieWithRuns {
            size = Int(cookie >> 16) + 1
            hasRuns = true
            let flagsStart = r.position
            try r.skip((size + 7) / 8)
            runFlags = Array(bytes[flagsStart..<r.position])
        } else if cookie == cookieNoRuns {
            let n = try r.u32()
            guard n <= 1 << 16 else { throw .malformed }
            size = Int(n)
            hasRuns = false
        } else {
            throw .unknownCookie
        }
        // Descriptive header: key and count − 1 per container.
        var keys: [UInt16] = []
        var counts: [Int] = []
        keys.reserveCapacity(size)
        counts.reserveCapacity(size)
        for _ in 0..<size {
            let key = try r.u16()
            if let last = keys.last, key <= last { throw .malformed }
            keys.append(key)
            counts.append(Int(try r.u16()) + 1)
        }
        var offsets: [Int]?
        if !hasRuns || size >= noOffsetThreshold {
            var o: [Int] = []
            o.reserveCapacity(size)
            for _ in 0..<size { o.append(Int(try r.u32())) }
            offsets = o
        }
        for i in 0..<size {
            if let offsets, offsets[i] != r.position { throw .malformed }
            let isRun = hasRuns && runFlags[i >> 3] & (1 << UInt8(i & 7)) != 0
            if isRun {
                try checkRuns(&r, count: counts[i])
            } else if counts[i] > maxArrayCount {
                var bits = 0
                for _ in 0..<1024 { bits += try r.u64().nonzeroBitCount }
                guard bits == counts[i] else { throw .malformed }
            } else {
                var previous = -1
                for _ in 0..<counts[i] {
                    let value = Int(try r.u16())
                    guard value > previous else { throw .malformed }
                    previous = value
                }
            }
        }
        guard r.atEnd else { throw .trailingBytes }
    }

    /// A run container: at least one run, ascending, not overlapping or touching, within 16 bits, with `count` values.
    static func checkRuns(_ r: inout Reader, count: Int) throws(BoxSet.DecodeError) {
        let runs = Int(try r.u16())
        guard runs > 0 else { throw .malformed }
        var previousEnd = -2
        var total = 0
        for _ in 0..<runs {
            let start = Int(try r.u16())
            let end = start + Int(try r.u16())
            guard start > previousEnd + 1, end <= 0xFFFF else { throw .malformed }
            total += end - start + 1
            previousEnd = end
        }
        guard total == count else { throw .malformed }
    }
}
