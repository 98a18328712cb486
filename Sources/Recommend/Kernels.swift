/// The dense kernels the solver and the scorer run on: dot, axpy, a symmetric matrix times a
/// vector, and the Gram matrix `YᵀY`, all on Float32 rows through raw pointers, eight lanes at a
/// time (`SIMD8<Float>`) with a scalar tail. Plain Swift, no BLAS: at 64 factors a call is a few
/// dozen instructions, and inlined loops beat a library call's overhead (docs/recommendations.md
/// has the measurement). Each kernel sums in a fixed order, so results are bit-identical run to run.
enum Kernels {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// `a · b` over `n` floats.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD8<Float>()
        var acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            acc0 += load(a, i) * load(b, i)
            acc1 += load(a, i + 8) * load(b, i + 8)
            i += 16
        }
        if i + 8 <= n {
            acc0 += load(a, i) * load(b, i)
            i += 8
        }
        var s = (acc0 + acc1).sum()
        while i < n {
            s += a[i] * b[i]
            i += 1
        }
        return s
    }

    /// `y += s · x` over `n` floats.
    @inline(__always)
    static func axpy(_ s: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let sv = SIMD8<Float>(repeating: s)
        var i = 0
        while i + 8 <= n {
            store(load(y, i) + sv * load(x, i), y, i)
            i += 8
        }
        while i < n {
            y[i] += s * x[i]
            i += 1
        }
    }

    /// `y = s · (A x)` with `A` a full (both triangles stored) symmetric `n × n` row-major matrix.
    @inline(__always)
    static func symv(_ s: Float, _ a: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for r in 0..<n {
            y[r] = s * dot(a + r * n, x, n)
        }
    }

    /// Adds rows `rows` of `m` (row-major, `n` wide) into the full Gram matrix `g += Σ mᵣ mᵣᵀ`
    /// (Float; callers sum bounded chunks like this and then add the chunks in Double).
    static func addGram(_ m: UnsafePointer<Float>, rows: Range<Int>, _ n: Int, into g: UnsafeMutablePointer<Float>) {
        for r in rows {
            let row = m + r * n
            for i in 0..<n where row[i] != 0 {
                axpy(row[i], row, g + i * n, n)
            }
        }
    }
}
