import Foundation
import Testing

@testable import Recommend

/// A seeded random users × items confidence matrix.
func randomMatrix(users: Int, items: Int, perUser: Int, seed: UInt64) -> SparseMatrix {
    var rng = SplitMix64(seed: seed)
    var r: [Int32] = []
    var c: [Int32] = []
    var v: [Float] = []
    for u in 0..<users {
        var seen = Set<Int32>()
        for _ in 0..<perUser {
            let i = Int32(rng.next() % UInt64(items))
            if seen.insert(i).inserted {
                r.append(Int32(u))
                c.append(i)
                v.append(1 + 10 * rng.nextUnitFloat())
            }
        }
    }
    return SparseMatrix(rows: users, columns: items, rowIndex: r, columnIndex: c, values: v)
}

/// Solves the symmetric positive-definite `a x = b` (n × n, row-major) by Cholesky, in Double.
func choleskySolve(_ a: [Double], _ b: [Double], _ n: Int) -> [Double] {
    var l = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
        for j in 0...i {
            var s = a[i * n + j]
            for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
            l[i * n + j] = i == j ? s.squareRoot() : s / l[j * n + j]
        }
    }
    var z = [Double](repeating: 0, count: n)
    for i in 0..<n {
        var s = b[i]
        for k in 0..<i { s -= l[i * n + k] * z[k] }
        z[i] = s / l[i * n + i]
    }
    var x = [Double](repeating: 0, count: n)
    for i in stride(from: n - 1, through: 0, by: -1) {
        var s = z[i]
        for k in (i + 1)..<n { s -= l[k * n + i] * x[k] }
        x[i] = s / l[i * n + i]
    }
    return x
}

@Suite("ALS solver")
struct SolverTests {
    @Test func lossFallsWithEveryIteration() throws {
        let m = randomMatrix(users: 300, items: 120, perUser: 12, seed: 3)
        var p = ALSParameters()
        p.factors = 8
        p.iterations = 10
        p.computeLoss = true
        let fit = try ALSTrainer.fit(m, parameters: p)
        #expect(fit.losses.count == 10)
        for i in 1..<fit.losses.count {
            #expect(fit.losses[i] < fit.losses[i - 1], "iteration \(i + 1): \(fit.losses[i]) ≥ \(fit.losses[i - 1])")
        }
        // The loss must have fallen substantially, not by rounding.
        let first = try #require(fit.losses.first)
        let last = try #require(fit.losses.last)
        #expect(last < 0.9 * first)
    }

    /// With as many CG steps as factors, one half-step from any start is the exact least-squares
    /// solution of (YᵀC_uY + λI) x = YᵀC_u p_u; checked against a Cholesky solve in Double.
    @Test func conjugateGradientAgreesWithExactSolve() throws {
        let f = 6
        let m = randomMatrix(users: 5, items: 30, perUser: 8, seed: 11)
        var rng = SplitMix64(seed: 5)
        let y = (0..<(30 * f)).map { _ in rng.nextUnitFloat() - 0.5 }
        var x = (0..<(5 * f)).map { _ in rng.nextUnitFloat() }
        var p = ALSParameters()
        p.factors = f
        p.regularization = 0.1
        p.cgSteps = 3 * f
        p.threads = 1
        ALSTrainer.solve(rows: m, target: &x, fixed: y, parameters: p)
        for u in 0..<5 {
            var a = [Double](repeating: 0, count: f * f)
            var b = [Double](repeating: 0, count: f)
            for i in 0..<30 {
                for r in 0..<f {
                    for c in 0..<f { a[r * f + c] += Double(y[i * f + r]) * Double(y[i * f + c]) }
                }
            }
            for k in m.range(ofRow: u) {
                let i = Int(m.indices[k])
                let conf = Double(m.values[k])
                for r in 0..<f {
                    b[r] += conf * Double(y[i * f + r])
                    for c in 0..<f { a[r * f + c] += (conf - 1) * Double(y[i * f + r]) * Double(y[i * f + c]) }
                }
            }
            for r in 0..<f { a[r * f + r] += 0.1 }
            let exact = choleskySolve(a, b, f)
            let scale = exact.map(abs).max() ?? 1
            for r in 0..<f {
                #expect(abs(Double(x[u * f + r]) - exact[r]) <= 1e-3 * scale, "user \(u) factor \(r): \(x[u * f + r]) vs \(exact[r])")
            }
        }
    }

    /// Three taste groups of users and items: each user watched a few items of their group. The
    /// model's top 10 for every user (watched items left out) must come from the user's own group.
    @Test func plantedGroupsAreRecovered() throws {
        let users = 240
        let items = 90
        var rng = SplitMix64(seed: 21)
        var r: [Int32] = []
        var c: [Int32] = []
        var v: [Float] = []
        for u in 0..<users {
            let g = u % 3
            var seen = Set<Int>()
            while seen.count < 8 {
                let i = g * 30 + Int(rng.next() % 30)
                if seen.insert(i).inserted {
                    r.append(Int32(u))
                    c.append(Int32(i))
                    v.append(1 + 5 * rng.nextUnitFloat())
                }
            }
        }
        let m = SparseMatrix(rows: users, columns: items, rowIndex: r, columnIndex: c, values: v)
        var p = ALSParameters()
        p.factors = 8
        p.iterations = 15
        p.regularization = 0.1
        let fit = try ALSTrainer.fit(m, parameters: p)
        let model = ALSModel(
            factors: 8, userIDs: (0..<users).map(String.init), itemIDs: (0..<items).map(String.init), userFactors: fit.userFactors,
            itemFactors: fit.itemFactors)
        var inGroup = 0
        var total = 0
        for u in 0..<users {
            let watched = Set(m.indices[m.range(ofRow: u)].map { Int($0) })
            let recs = model.recommend(user: u, n: 10, exclude: watched)
            #expect(recs.count == 10)
            #expect(recs.allSatisfy { !watched.contains($0.item) })
            inGroup += recs.filter { $0.item / 30 == u % 3 }.count
            total += recs.count
        }
        #expect(Double(inGroup) / Double(total) >= 0.99, "\(inGroup) of \(total) recommendations in the user's group")
        // Similar items of an item are from its group too.
        let similar = model.similarItems(to: 0, n: 10)
        #expect(similar.count == 10 && similar.allSatisfy { $0.item / 30 == 0 && $0.item != 0 })
    }

    @Test func sameSeedGivesBitIdenticalFactorsOnOneOrTwoThreads() throws {
        let m = randomMatrix(users: 1500, items: 400, perUser: 20, seed: 9)
        var p = ALSParameters()
        p.factors = 16
        p.iterations = 3
        p.threads = 2
        let a = try ALSTrainer.fit(m, parameters: p)
        let b = try ALSTrainer.fit(m, parameters: p)
        p.threads = 1
        let c = try ALSTrainer.fit(m, parameters: p)
        #expect(a.userFactors == b.userFactors && a.itemFactors == b.itemFactors)
        #expect(a.userFactors == c.userFactors && a.itemFactors == c.itemFactors)
        p.seed = 2
        let d = try ALSTrainer.fit(m, parameters: p)
        #expect(d.userFactors != a.userFactors)
    }

    @Test func divergenceIsATypedError() throws {
        let m = SparseMatrix(rows: 2, columns: 2, rowIndex: [0, 1], columnIndex: [0, 1], values: [3e38, 3e38])
        var p = ALSParameters()
        p.factors = 4
        #expect(throws: ALSError.diverged(iteration: 1, side: .users, row: 0)) { try ALSTrainer.fit(m, parameters: p) }
    }

    @Test func badInputIsRefused() throws {
        var p = ALSParameters()
        p.factors = 0
        let m = randomMatrix(users: 3, items: 3, perUser: 2, seed: 1)
        #expect(throws: ALSError.invalidParameter("factors must be in 1...1024, got 0")) { try ALSTrainer.fit(m, parameters: p) }
        let empty = SparseMatrix(rows: 2, columns: 2, rowIndex: [], columnIndex: [], values: [])
        #expect(throws: ALSError.emptyMatrix) { try ALSTrainer.fit(empty, parameters: ALSParameters()) }
        let nan = SparseMatrix(rows: 2, columns: 2, rowIndex: [0, 1], columnIndex: [0, 1], values: [1, .nan])
        #expect(throws: ALSError.invalidConfidence(row: 1, column: 1)) { try ALSTrainer.fit(nan, parameters: ALSParameters()) }
    }

    @Test func transposeRoundTrips() {
        let m = randomMatrix(users: 50, items: 20, perUser: 5, seed: 4)
        let t = m.transposed()
        #expect(t.rows == 20 && t.columns == 50 && t.nonZeros == m.nonZeros)
        #expect(t.transposed() == m)
    }
}
