import Foundation
import Testing

@testable import Recommend

/// An `.npy` file as numpy writes it (format 1.0, header padded to 64 bytes).
func npyFile(
    rows: Int, k: Int, values: [Double], descr: String = "<f4", fortran: Bool = false, major: UInt8 = 1, shape: String? = nil
) -> [UInt8] {
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape ?? "(\(rows), \(k))"), }"
    let prefix = major == 1 ? 10 : 12
    while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, major, 0]
    let n = header.utf8.count
    out += major == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), 0, 0]
    out += Array(header.utf8)
    // In file order: C order is row after row, Fortran order column after column.
    var order: [Double] = []
    if fortran {
        for c in 0..<k { for r in 0..<rows { order.append(values[r * k + c]) } }
    } else {
        order = values
    }
    for v in order {
        switch descr {
        case "<f8": withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 }
        case "<i4": withUnsafeBytes(of: Int32(v).littleEndian) { out += $0 }
        default: withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { out += $0 }
        }
    }
    return out
}

@Suite("Factor import (CSV, .npy)")
struct FactorImportTests {
    func csv(_ text: String) throws(FactorImportError) -> FactorTable { try FactorImport.csv(Array(text.utf8), file: "f.csv") }

    func csvError(_ text: String) -> FactorImportError? {
        do { _ = try csv(text) } catch { return error }
        return nil
    }

    @Test func csvWithAHeaderAndCRLFReadsEveryRow() throws {
        let t = try csv("id,f0,f1\r\nbox-1,0.5,-1e-3\r\nbox-2,2,3.25\r\n\r\n")
        #expect(t == FactorTable(ids: ["box-1", "box-2"], factors: 2, values: [0.5, -0.001, 2, 3.25]))
        #expect(try csv("a,1\nb,2") == FactorTable(ids: ["a", "b"], factors: 1, values: [1, 2]))
    }

    @Test(arguments: [
        ("a,1,2\nb,1,x\n", 2, "factor 2 (\"x\") is not a number"),
        ("a,1,2\nb,1,nan\n", 2, "factor 2 is nan, not finite"),
        ("a,1,2\nb,inf,1\n", 2, "factor 1 is inf, not finite"),
        ("a,1,2\nb,1\n", 2, "1 factors, but earlier rows have 2"),
        ("a,1,2\n\nc,3,4\na,5,6\n", 4, "id a repeats line 1"),
        ("a,1\n,2\n", 2, "id is empty"),
        ("a\n", 1, "no factors after the id"),
        ("a,1,2\nb,1,2,\n", 2, "3 factors, but earlier rows have 2"),
        ("a,1,2\nb,,2\n", 2, "factor 1 (\"\") is not a number"),
    ])
    func csvErrorsNameTheirLine(text: String, line: Int, message: String) {
        let e = csvError(text)
        #expect(e == FactorImportError("f.csv", line: line, message), "\(String(describing: e))")
        #expect(e?.description.hasPrefix("f.csv:\(line): ") == true)
    }

    @Test func anEmptyFileIsRefused() {
        #expect(csvError("") == FactorImportError("f.csv", "no rows"))
        #expect(csvError("id,f0\n") == FactorImportError("f.csv", "no rows"))
    }

    @Test(arguments: [("<f4", false, UInt8(1)), ("<f8", false, 1), ("<f4", true, 1), ("<f8", true, 2)])
    func npyInEitherWidthAndOrderReadsAsRowMajorFloats(descr: String, fortran: Bool, major: UInt8) throws {
        let values: [Double] = [1, 2, 3, 4.5, -5, 6]
        let t = try FactorImport.npy(
            npyFile(rows: 3, k: 2, values: values, descr: descr, fortran: fortran, major: major), file: "f.npy", ids: Array("x\ny\nz\n".utf8),
            idsFile: "f.ids")
        #expect(t == FactorTable(ids: ["x", "y", "z"], factors: 2, values: values.map(Float.init)))
    }

    @Test func npyErrorsNameTheFile() {
        func error(_ bytes: [UInt8], ids: String = "x\ny\n") -> FactorImportError? {
            do { _ = try FactorImport.npy(bytes, file: "f.npy", ids: Array(ids.utf8), idsFile: "f.ids") } catch { return error }
            return nil
        }
        let good = npyFile(rows: 2, k: 2, values: [1, 2, 3, 4])
        #expect(error(good) == nil)
        #expect(error(Array("id,1\n".utf8))?.message.contains("not an .npy file") == true)
        #expect(error(npyFile(rows: 2, k: 2, values: [1, 2, 3, 4], descr: "<i4"))?.message.contains("dtype '<i4' is not supported") == true)
        #expect(error(Array(good.dropLast(4)))?.message == "12 data bytes, but shape (2, 2) of <f4 needs 16")
        #expect(error(npyFile(rows: 2, k: 2, values: [1, 2, .nan, 4]))?.message == "row 1, factor 1 is nan, not finite")
        #expect(error(good, ids: "x\n") == FactorImportError("f.ids", "1 ids for the 2 rows of f.npy"))
        #expect(error(good, ids: "x\nx\n") == FactorImportError("f.ids", line: 2, "id x repeats line 1"))
        #expect(error(good, ids: "x\ny\nz\n") == FactorImportError("f.ids", "3 ids for the 2 rows of f.npy"))
        #expect(error(npyFile(rows: 2, k: 2, values: [1, 2, 3, 4], shape: "(4,)"))?.message.contains("is not 2-D") == true)
    }

    @Test func usersAndItemsMustHaveTheSameFactors() throws {
        let users = FactorTable(ids: ["u"], factors: 2, values: [1, 2])
        let items = FactorTable(ids: ["a", "b"], factors: 3, values: [1, 2, 3, 4, 5, 6])
        #expect(throws: FactorImportError("factors", "users have 2 factors and items 3: they must agree")) {
            try FactorImport.model(users: users, items: items)
        }
        let model = try FactorImport.model(users: users, items: FactorTable(ids: ["a", "b"], factors: 2, values: [1, 0, 0, 1]))
        #expect(model.recommend(user: 0, n: 1) == [ScoredItem(item: 1, score: 2)])
    }

    /// The test hook stands for a fit whose factors blow up: the solver stops at that iteration
    /// with `diverged`, naming the side and a row.
    @Test func aPoisonedFactorStopsTheFitAsDiverged() throws {
        let m = randomMatrix(users: 40, items: 20, perUser: 5, seed: 9)
        var p = ALSParameters()
        p.factors = 4
        p.iterations = 5
        p.poisonAfterIteration = 3
        #expect(throws: ALSError.diverged(iteration: 3, side: .users, row: 20)) { try ALSTrainer.fit(m, parameters: p) }
        p.poisonAfterIteration = nil
        _ = try ALSTrainer.fit(m, parameters: p)
    }
}
