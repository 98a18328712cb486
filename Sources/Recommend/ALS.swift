import Foundation

/// How implicit ALS is fitted (docs/recommendations.md).
package struct ALSParameters: Sendable, Equatable {
    /// Latent factors per user and per item.
    package var factors: Int = 64
    /// λ, the L2 penalty on every factor (not scaled by the row's count, as in `implicit`).
    package var regularization: Float = 0.01
    /// ALS iterations; each solves every user row, then every item row.
    package var iterations: Int = 15
    /// Conjugate-gradient steps per row and half-iteration, warm-started from the row's last value.
    package var cgSteps: Int = 3
    /// Seed of the initial factors: the same seed gives bit-identical factors.
    package var seed: UInt64 = 1
    /// 1 runs on the calling thread; anything else runs the fixed chunks on every core.
    package var threads: Int = 2
    /// Compute the training loss after each iteration (one more pass over the data).
    package var computeLoss: Bool = false
    /// Test hook: after the user half of this iteration one user factor is set to NaN, as a
    /// numerically diverging fit leaves it, so that the handling of divergence (the version
    /// failed, the previous model kept, an alarm) can be tested end to end. Nil outside tests.
    package var poisonAfterIteration: Int? = nil

    /// The defaults: 64 factors, λ 0.01, 15 iterations, 3 CG steps, seed 1, both cores.
    package init() {}

    /// Refuses values the solver cannot use, naming the parameter.
    package func validate() throws(ALSError) {
        if factors < 1 || factors > 1024 { throw .invalidParameter("factors must be in 1...1024, got \(factors)") }
        if !(regularization >= 0) || !regularization.isFinite {
            throw .invalidParameter("regularization must be finite and ≥ 0, got \(regularization)")
        }
        if iterations < 1 { throw .invalidParameter("iterations must be ≥ 1, got \(iterations)") }
        if cgSteps < 1 { throw .invalidParameter("cgSteps must be ≥ 1, got \(cgSteps)") }
    }
}

/// Which factor matrix a row belongs to.
package enum FactorSide: String, Sendable, Equatable {
    case users, items
}

/// Why a fit failed.
package enum ALSError: Error, Equatable, CustomStringConvertible {
    /// A parameter out of range; the message names it.
    case invalidParameter(String)
    /// The matrix has no entries, or no confidence is positive.
    case emptyMatrix
    /// A confidence is NaN, infinite or ≤ 0 (row and column of the entry).
    case invalidConfidence(row: Int, column: Int)
    /// A factor became NaN or infinite: the first offending row after the given half-iteration.
    case diverged(iteration: Int, side: FactorSide, row: Int)

    package var description: String {
        switch self {
        case .invalidParameter(let m): return m
        case .emptyMatrix: return "the interaction matrix is empty"
        case .invalidConfidence(let r, let c): return "confidence at row \(r), column \(c) is not a finite positive number"
        case .diverged(let it, let side, let row):
            return "training diverged: \(side.rawValue) factor row \(row) is not finite after iteration \(it)"
        }
    }
}

/// One iteration done, for progress reports.
package struct ALSProgress: Sendable {
    /// 1-based iteration just finished.
    package let iteration: Int
    /// Iterations in the fit.
    package let iterations: Int
    /// The training loss after it, when `computeLoss` is set.
    package let loss: Double?
}

/// The fitted factors, row-major Float32.
package struct ALSFactors: Sendable {
    /// Factors per row.
    package let factors: Int
    /// `users × factors`, row-major.
    package let userFactors: [Float]
    /// `items × factors`, row-major.
    package let itemFactors: [Float]
    /// The loss after each iteration (empty unless `computeLoss`).
    package let losses: [Double]
}

/// Implicit-feedback ALS (Hu, Koren & Volinsky 2008) with the conjugate-gradient row solver of
/// Takács, Pilászy & Tikk (2011), as `implicit`'s `least_squares_cg`: a pair that was seen has
/// preference 1 and confidence `c_ui` (the matrix value); every other pair preference 0 and
/// confidence 1. Loss: Σ c_ui (p_ui − x_uᵀy_i)² + λ(Σ‖x_u‖² + Σ‖y_i‖²).
package enum ALSTrainer {
    /// Rows per work chunk. Fixed, so the split (and so the result) never depends on the threads.
    static let chunkRows = 256

    /// Fits user and item factors to `userItems` (users × items, values = confidences > 0).
    /// Starts from uniform [0, 0.01) factors drawn from `parameters.seed` (users, then items).
    package static func fit(
        _ userItems: SparseMatrix, parameters: ALSParameters, progress: (ALSProgress) -> Void = { _ in }
    ) throws(ALSError) -> ALSFactors {
        try parameters.validate()
        guard userItems.nonZeros > 0 else { throw .emptyMatrix }
        for r in 0..<userItems.rows {
            for k in userItems.range(ofRow: r) where !(userItems.values[k] > 0 && userItems.values[k].isFinite) {
                throw .invalidConfidence(row: r, column: Int(userItems.indices[k]))
            }
        }
        let itemUsers = userItems.transposed()
        let f = parameters.factors
        var rng = SplitMix64(seed: parameters.seed)
        var x = (0..<(userItems.rows * f)).map { _ in rng.nextUnitFloat() * 0.01 }
        var y = (0..<(userItems.columns * f)).map { _ in rng.nextUnitFloat() * 0.01 }
        var losses: [Double] = []
        for it in 1...parameters.iterations {
            solve(rows: userItems, target: &x, fixed: y, parameters: parameters)
            if parameters.poisonAfterIteration == it, !x.isEmpty { x[x.count / 2] = .nan }
            if let bad = firstNonFinite(x, f) { throw .diverged(iteration: it, side: .users, row: bad) }
            solve(rows: itemUsers, target: &y, fixed: x, parameters: parameters)
            if let bad = firstNonFinite(y, f) { throw .diverged(iteration: it, side: .items, row: bad) }
            var loss: Double?
            if parameters.computeLoss {
                let l = self.loss(userItems, userFactors: x, itemFactors: y, factors: f, regularization: parameters.regularization, threads: parameters.threads)
                losses.append(l)
                loss = l
            }
            progress(ALSProgress(iteration: it, iterations: parameters.iterations, loss: loss))
        }
        return ALSFactors(factors: f, userFactors: x, itemFactors: y, losses: losses)
    }

    /// The first row of `m` holding a NaN or an infinity.
    static func firstNonFinite(_ m: [Float], _ f: Int) -> Int? {
        m.firstIndex { !$0.isFinite }.map { $0 / f }
    }

    /// `YᵀY + λI` of `fixed` (rows × f), Float32, full. Summed in fixed chunks in Float, the chunks
    /// added in order in Double: deterministic whatever the threads.
    static func gram(_ fixed: [Float], factors f: Int, regularization: Float, threads: Int) -> [Float] {
        let rows = fixed.count / f
        let chunk = 4096
        let chunks = (rows + chunk - 1) / chunk
        var partial = [Float](repeating: 0, count: max(chunks, 1) * f * f)
        fixed.withUnsafeBufferPointer { m in
            partial.withUnsafeMutableBufferPointer { out in
                guard let mb = m.baseAddress, let ob = out.baseAddress else { return }
                let dst = SharedPointer(base: ob)
                forEachChunk(count: rows, chunkSize: chunk, threads: threads) { c, range in
                    Kernels.addGram(mb, rows: range, f, into: dst.base + c * f * f)
                }
            }
        }
        var g = [Float](repeating: 0, count: f * f)
        for i in 0..<(f * f) {
            var s = 0.0
            for c in 0..<chunks { s += Double(partial[c * f * f + i]) }
            g[i] = Float(s)
        }
        for i in 0..<f { g[i * f + i] += regularization }
        return g
    }

    /// One half-iteration: every row of `target` moves `cgSteps` CG steps towards the solution of
    /// (YᵀC_uY + λI) x_u = YᵀC_u p_u, from its current value. A row with no entries becomes zero.
    static func solve(rows m: SparseMatrix, target: inout [Float], fixed: [Float], parameters: ALSParameters) {
        let f = parameters.factors
        let yty = gram(fixed, factors: f, regularization: parameters.regularization, threads: parameters.threads)
        let steps = parameters.cgSteps
        target.withUnsafeMutableBufferPointer { xb in
            fixed.withUnsafeBufferPointer { yb in
                yty.withUnsafeBufferPointer { gb in
                    m.indptr.withUnsafeBufferPointer { ptr in
                        m.indices.withUnsafeBufferPointer { idx in
                            m.values.withUnsafeBufferPointer { val in
                                guard let xp = xb.baseAddress, let yp = yb.baseAddress, let gp = gb.baseAddress,
                                    let pp = ptr.baseAddress, let ip = idx.baseAddress, let vp = val.baseAddress
                                else { return }
                                let x = SharedPointer(base: xp)
                                forEachChunk(count: m.rows, chunkSize: chunkRows, threads: parameters.threads) { _, range in
                                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 3 * f)
                                    defer { scratch.deallocate() }
                                    for u in range {
                                        solveRow(
                                            x.base + u * f, entries: pp[u]..<pp[u + 1], indices: ip, values: vp, y: yp, yty: gp, f: f,
                                            steps: steps, scratch: scratch)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// CG on one row, as `implicit`'s `_least_squares_cg`: r = b − A x, then `steps` steps.
    @inline(__always)
    static func solveRow(
        _ x: UnsafeMutablePointer<Float>, entries: Range<Int>, indices: UnsafePointer<Int32>, values: UnsafePointer<Float>,
        y: UnsafePointer<Float>, yty: UnsafePointer<Float>, f: Int, steps: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        if entries.isEmpty {
            x.update(repeating: 0, count: f)
            return
        }
        let r = scratch
        let p = scratch + f
        let ap = scratch + 2 * f
        // r = YᵀC_u p_u − (YᵀY + λI + Yᵀ(C_u − I)Y) x
        Kernels.symv(-1, yty, x, r, f)
        for k in entries {
            let yi = y + Int(indices[k]) * f
            let c = values[k]
            Kernels.axpy(c - (c - 1) * Kernels.dot(yi, x, f), yi, r, f)
        }
        p.update(from: r, count: f)
        var rsold = Kernels.dot(r, r, f)
        if rsold < 1e-20 { return }
        for _ in 0..<steps {
            // ap = A p, without forming A
            Kernels.symv(1, yty, p, ap, f)
            for k in entries {
                let yi = y + Int(indices[k]) * f
                Kernels.axpy((values[k] - 1) * Kernels.dot(yi, p, f), yi, ap, f)
            }
            let alpha = rsold / Kernels.dot(p, ap, f)
            Kernels.axpy(alpha, p, x, f)
            Kernels.axpy(-alpha, ap, r, f)
            let rsnew = Kernels.dot(r, r, f)
            if rsnew < 1e-20 { break }
            let beta = rsnew / rsold
            for j in 0..<f { p[j] = r[j] + beta * p[j] }
            rsold = rsnew
        }
    }

    /// The training loss as `implicit` reports it: the weighted squared error over every pair plus
    /// the penalty, divided by Σc_ui + (users·items − nnz) (the total confidence). Deterministic.
    package static func loss(
        _ m: SparseMatrix, userFactors x: [Float], itemFactors y: [Float], factors f: Int, regularization: Float, threads: Int
    ) -> Double {
        let yty = gram(y, factors: f, regularization: 0, threads: threads)
        let chunks = (m.rows + chunkRows - 1) / chunkRows
        var partial = [Double](repeating: 0, count: 2 * chunks)
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeBufferPointer { yb in
                yty.withUnsafeBufferPointer { gb in
                    partial.withUnsafeMutableBufferPointer { out in
                        guard let xp = xb.baseAddress, let yp = yb.baseAddress, let gp = gb.baseAddress, let op = out.baseAddress else { return }
                        let o = SharedPointer(base: op)
                        forEachChunk(count: m.rows, chunkSize: chunkRows, threads: threads) { c, range in
                            var loss = 0.0
                            var conf = 0.0
                            let r = UnsafeMutablePointer<Float>.allocate(capacity: f)
                            defer { r.deallocate() }
                            for u in range {
                                let xu = xp + u * f
                                Kernels.symv(1, gp, xu, r, f)
                                var rowLoss = Double(Kernels.dot(r, xu, f))
                                for k in m.range(ofRow: u) {
                                    let c = Double(m.values[k])
                                    let s = Double(Kernels.dot(yp + Int(m.indices[k]) * f, xu, f))
                                    rowLoss += (c - 1) * s * s - 2 * c * s + c
                                    conf += c
                                }
                                loss += rowLoss
                            }
                            o.base[2 * c] = loss
                            o.base[2 * c + 1] = conf
                        }
                    }
                }
            }
        }
        var loss = 0.0
        var conf = 0.0
        for c in 0..<chunks {
            loss += partial[2 * c]
            conf += partial[2 * c + 1]
        }
        var norms = 0.0
        for v in x { norms += Double(v) * Double(v) }
        for v in y { norms += Double(v) * Double(v) }
        loss += Double(regularization) * norms
        let total = conf + Double(m.rows) * Double(m.columns) - Double(m.nonZeros)
        return loss / total
    }
}
