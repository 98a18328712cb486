import Dispatch

/// A pointer handed to worker threads. Each worker writes only the rows of its own chunk, so no two
/// threads touch the same memory; that is what makes the `@unchecked Sendable` sound.
struct SharedPointer<T>: @unchecked Sendable {
    let base: UnsafeMutablePointer<T>
}

/// Runs `body` over `0..<count` split into fixed chunks of `chunkSize` (the last one shorter). The
/// split depends only on `count` and `chunkSize`, never on the thread count or on timing, and each
/// chunk runs on exactly one thread, so a body whose rows depend only on shared read-only inputs
/// gives bit-identical results however the chunks are scheduled. `threads == 1` runs them in order
/// on the caller's thread; otherwise they run on `DispatchQueue.concurrentPerform` (every core).
func forEachChunk(count: Int, chunkSize: Int, threads: Int, _ body: (Int, Range<Int>) -> Void) {
    let chunks = (count + chunkSize - 1) / chunkSize
    if chunks == 0 { return }
    let bounds: @Sendable (Int) -> Range<Int> = { c in (c * chunkSize)..<min(count, (c + 1) * chunkSize) }
    if threads <= 1 || chunks == 1 {
        for c in 0..<chunks { body(c, bounds(c)) }
    } else {
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { box.value($0, bounds($0)) }
        }
    }
}

/// Carries a non-`Sendable` closure into `concurrentPerform`, which calls it only while the
/// caller waits.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// SplitMix64: the seeded generator behind the initial factors and the random holdout. The same
/// seed gives the same sequence on every platform.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator's whole state.
    package var state: UInt64

    /// A generator that starts from `seed`.
    package init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A Float uniform in [0, 1), from the top 24 bits.
    package mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }
}
