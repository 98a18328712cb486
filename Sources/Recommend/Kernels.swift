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
    /// Since row j of `A` is its column j, `A x = Σ_j x_j A_j`: axpys of four rows at a time,
    /// which needs no horizontal sums.
    @inline(__always)
    static func symv(_ s: Float, _ a: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        y.update(repeating: 0, count: n)
        var j = 0
        while j + 4 <= n {
            let c0 = s * x[j]
            let c1 = s * x[j + 1]
            let c2 = s * x[j + 2]
            let c3 = s * x[j + 3]
            let v0 = SIMD8<Float>(repeating: c0)
            let v1 = SIMD8<Float>(repeating: c1)
            let v2 = SIMD8<Float>(repeating: c2)
            let v3 = SIMD8<Float>(repeating: c3)
            let r0 = a + j * n
            let r1 = r0 + n
            let r2 = r1 + n
            let r3 = r2 + n
            var i = 0
            while i + 8 <= n {
                var acc = load(y, i)
                acc += v0 * load(r0, i)
                acc += v1 * load(r1, i)
                acc += v2 * load(r2, i)
                acc += v3 * load(r3, i)
                store(acc, y, i)
                i += 8
            }
            while i < n {
                y[i] += c0 * r0[i] + c1 * r1[i] + c2 * r2[i] + c3 * r3[i]
                i += 1
            }
            j += 4
        }
        while j < n {
            axpy(s * x[j], a + j * n, y, n)
            j += 1
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
