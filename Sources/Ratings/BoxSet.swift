import CRoaring

/// A set of boxes (dense `BoxIndex`es) as a roaring bitmap (CRoaring): compact for dense and sparse sets alike,
/// fast to union and count, and stored in roaring's portable format (docs/ratings-method.md, "Rollups").
///
/// A value type: copies share one bitmap until one of them is mutated (copy-on-write). Iterates in ascending order.
public struct BoxSet: Sendable, Hashable, Sequence, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// Why `init(serialized:)` refused bytes.
    public enum DecodeError: Error, Sendable, Equatable {
        /// The bytes end before the bitmap they describe does (this includes no bytes at all).
        case truncated
        /// The first four bytes are not a portable roaring cookie.
        case unknownCookie
        /// The bytes are in the format but describe no valid bitmap: containers or values out of order,
        /// counts that disagree, runs that overlap or overflow, offsets that point elsewhere.
        case malformed
        /// Bytes follow the bitmap.
        case trailingBytes
    }

    /// Owns one bitmap and frees it. `@unchecked Sendable` is safe: BoxSet is copy-on-write, so a storage that more
    /// than one value (or thread) holds is only ever read; it is mutated only through a uniquely referenced value.
    final class Storage: @unchecked Sendable {
        let bitmap: UnsafeMutablePointer<roaring_bitmap_t>

        init(_ bitmap: UnsafeMutablePointer<roaring_bitmap_t>?) {
            guard let bitmap else { fatalError("BoxSet: CRoaring could not allocate a bitmap") }
            self.bitmap = bitmap
        }

        deinit { roaring_bitmap_free(bitmap) }
    }

    var storage: Storage

    init(storage: Storage) { self.storage = storage }

    /// The empty set.
    public init() { storage = Storage(roaring_bitmap_create()) }

    public init(_ s: some Sequence<BoxIndex>) {
        self.init()
        let values = Array(s)
        values.withUnsafeBufferPointer { roaring_bitmap_add_many(storage.bitmap, $0.count, $0.baseAddress) }
    }

    public init(arrayLiteral elements: BoxIndex...) { self.init(elements) }

    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = Storage(roaring_bitmap_copy(storage.bitmap)) }
    }

    /// Adds `box`; nothing changes if it is in the set already.
    public mutating func insert(_ box: BoxIndex) {
        makeUnique()
        roaring_bitmap_add(storage.bitmap, box)
    }

    public func contains(_ box: BoxIndex) -> Bool { roaring_bitmap_contains(storage.bitmap, box) }

    public var count: Int { Int(roaring_bitmap_get_cardinality(storage.bitmap)) }

    public var isEmpty: Bool { roaring_bitmap_is_empty(storage.bitmap) }

    public mutating func formUnion(_ other: BoxSet) {
        if other.storage === storage || other.isEmpty { return }
        if isEmpty {
            self = other
            return
        }
        makeUnique()
        roaring_bitmap_or_inplace(storage.bitmap, other.storage.bitmap)
    }

    public func union(_ other: BoxSet) -> BoxSet {
        var result = self
        result.formUnion(other)
        return result
    }

    /// The union of `sets`, in one many-way OR.
    public static func union(_ sets: [BoxSet]) -> BoxSet {
        let nonEmpty = sets.filter { !$0.isEmpty }
        if nonEmpty.count <= 1 { return nonEmpty.first ?? BoxSet() }
        return withExtendedLifetime(nonEmpty) {
            var bitmaps: [UnsafePointer<roaring_bitmap_t>?] = nonEmpty.map { UnsafePointer($0.storage.bitmap) }
            return bitmaps.withUnsafeMutableBufferPointer {
                BoxSet(storage: Storage(roaring_bitmap_or_many($0.count, $0.baseAddress)))
            }
        }
    }

    /// The boxes in both sets.
    public func intersection(_ other: BoxSet) -> BoxSet {
        if isEmpty || other.isEmpty { return BoxSet() }
        return BoxSet(storage: Storage(roaring_bitmap_and(storage.bitmap, other.storage.bitmap)))
    }

    /// The number of boxes in both sets.
    public func intersectionCount(_ other: BoxSet) -> Int {
        Int(roaring_bitmap_and_cardinality(storage.bitmap, other.storage.bitmap))
    }

    /// The set in roaring's portable format (github.com/RoaringBitmap/RoaringFormatSpec), runs compressed: the form
    /// other roaring implementations read, and the one to store.
    public func serialized() -> [UInt8] {
        let copy = Storage(roaring_bitmap_copy(storage.bitmap))
        roaring_bitmap_run_optimize(copy.bitmap)
        let size = roaring_bitmap_portable_size_in_bytes(copy.bitmap)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            initialized = buffer.withMemoryRebound(to: CChar.self) {
                roaring_bitmap_portable_serialize(copy.bitmap, $0.baseAddress)
            }
        }
    }

    /// Reads a set in roaring's portable format. Any bytes may come in: they are checked in full before CRoaring
    /// reads them, and what is not exactly one valid bitmap is refused with a `DecodeError`.
    public init(serialized: some Collection<UInt8>) throws(DecodeError) {
        let bytes = Array(serialized)
        try PortableFormat.validate(bytes)
        let bitmap = bytes.withUnsafeBufferPointer {
            $0.withMemoryRebound(to: CChar.self) { roaring_bitmap_portable_deserialize_safe($0.baseAddress, $0.count) }
        }
        guard let bitmap else { throw .malformed }
        storage = Storage(bitmap)
        guard roaring_bitmap_portable_size_in_bytes(bitmap) == bytes.count else { throw .malformed }
    }

    public static func == (lhs: BoxSet, rhs: BoxSet) -> Bool {
        lhs.storage === rhs.storage || roaring_bitmap_equals(lhs.storage.bitmap, rhs.storage.bitmap)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for box in self { hasher.combine(box) }
    }

    public var description: String {
        let shown = prefix(16).map(String.init).joined(separator: ", ")
        return "BoxSet(count: \(count), [\(shown)\(count > 16 ? ", …" : "")])"
    }

    public var underestimatedCount: Int { count }

    public func makeIterator() -> Iterator { Iterator(storage) }

    /// Reads the bitmap in batches, in ascending order. It holds the bitmap, so mutating the set meanwhile copies it.
    public struct Iterator: IteratorProtocol {
        final class Cursor {
            let storage: Storage
            let iterator: UnsafeMutablePointer<roaring_uint32_iterator_t>
            var buffer = [UInt32](repeating: 0, count: 256)
            var filled = 0
            var position = 0
            var drained = false

            init(_ storage: Storage) {
                self.storage = storage
                guard let iterator = roaring_create_iterator(storage.bitmap) else {
                    fatalError("BoxSet: CRoaring could not allocate an iterator")
                }
                self.iterator = iterator
            }

            deinit { roaring_free_uint32_iterator(iterator) }

            func next() -> BoxIndex? {
                if position == filled {
                    if drained { return nil }
                    let capacity = UInt32(buffer.count)
                    let read = buffer.withUnsafeMutableBufferPointer {
                        roaring_read_uint32_iterator(iterator, $0.baseAddress, capacity)
                    }
                    filled = Int(read)
                    position = 0
                    drained = read < capacity
                    if filled == 0 { return nil }
                }
                defer { position += 1 }
                return buffer[position]
            }
        }

        let cursor: Cursor

        init(_ storage: Storage) { cursor = Cursor(storage) }

        public mutating func next() -> BoxIndex? { cursor.next() }
    }
}
