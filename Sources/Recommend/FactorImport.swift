import Foundation

/// One side (users or items) of a model trained elsewhere: ids and their factor rows
/// (docs/recommendations.md, "Importing factors").
package struct FactorTable: Sendable, Equatable {
    /// The id of each row.
    package var ids: [String]
    /// Factors per row.
    package var factors: Int
    /// `ids.count × factors`, row-major.
    package var values: [Float]

    package init(ids: [String], factors: Int, values: [Float]) {
        self.ids = ids
        self.factors = factors
        self.values = values
    }
}

/// Why factors could not be imported; each names the file, and the line where there is one.
package struct FactorImportError: Error, Equatable, CustomStringConvertible {
    package var file: String
    /// 1-based line of a CSV or ids file; nil for errors of a whole file.
    package var line: Int?
    package var message: String

    package init(_ file: String, line: Int? = nil, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    package var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// Reads factors trained elsewhere (Spark MLlib, `implicit`, …):
///
/// - CSV: one row per line, `id,f0,f1,…,f(k-1)`, comma-separated, no quoting; a first line whose
///   first field is `id` is a header and skipped; every row has the same k; values are decimal
///   floats (finite);
/// - `.npy`: a 2-D little-endian `float32` (`<f4`) or `float64` (`<f8`) array of shape
///   (rows, k), C or Fortran order, with the ids in a text file, one per line, in row order.
///
/// Ids are 1–64 bytes without control characters or commas, each once per file.
package enum FactorImport {
    /// Longest id (as the hub's identifiers).
    package static let maxIDBytes = 64

    /// Parses a CSV factor file.
    package static func csv(_ bytes: [UInt8], file: String) throws(FactorImportError) -> FactorTable {
        var ids: [String] = []
        var values: [Float] = []
        var k: Int?
        var seen: [String: Int] = [:]
        var lineNumber = 0
        var start = 0
        let n = bytes.count
        while start < n {
            var end = start
            while end < n && bytes[end] != 0x0A { end += 1 }
            lineNumber += 1
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            defer { start = end + 1 }
            if lineEnd == start { continue }  // blank line
            let fields = bytes[start..<lineEnd].split(separator: 0x2C, omittingEmptySubsequences: false)
            let id = String(decoding: fields[0], as: UTF8.self)
            if lineNumber == 1 && id == "id" { continue }
            if let bad = idProblem(fields[0]) { throw FactorImportError(file, line: lineNumber, "id \(bad)") }
            let width = fields.count - 1
            guard width >= 1 else { throw FactorImportError(file, line: lineNumber, "no factors after the id") }
            if let k, width != k { throw FactorImportError(file, line: lineNumber, "\(width) factors, but earlier rows have \(k)") }
            k = width
            if let first = seen[id] { throw FactorImportError(file, line: lineNumber, "id \(id) repeats line \(first)") }
            seen[id] = lineNumber
            for (c, field) in fields.dropFirst().enumerated() {
                guard let v = Float(String(decoding: field, as: UTF8.self)) else {
                    throw FactorImportError(
                        file, line: lineNumber, "factor \(c + 1) (\"\(String(decoding: field.prefix(32), as: UTF8.self))\") is not a number")
                }
                guard v.isFinite else { throw FactorImportError(file, line: lineNumber, "factor \(c + 1) is \(v), not finite") }
                values.append(v)
            }
            ids.append(id)
        }
        guard let k, !ids.isEmpty else { throw FactorImportError(file, "no rows") }
        return FactorTable(ids: ids, factors: k, values: values)
    }

    /// Parses an `.npy` factor matrix and its ids file (one id per line, in row order).
    package static func npy(_ bytes: [UInt8], file: String, ids idBytes: [UInt8], idsFile: String) throws(FactorImportError) -> FactorTable {
        let header = try npyHeader(bytes, file: file)
        let (rows, k, wide, fortran, offset) = header
        let width = wide ? 8 : 4
        guard bytes.count - offset == rows * k * width else {
            throw FactorImportError(file, "\(bytes.count - offset) data bytes, but shape (\(rows), \(k)) of \(wide ? "<f8" : "<f4") needs \(rows * k * width)")
        }
        var values = [Float](repeating: 0, count: rows * k)
        bytes.withUnsafeBytes { raw in
            for r in 0..<rows {
                for c in 0..<k {
                    let index = fortran ? c * rows + r : r * k + c
                    let at = offset + index * width
                    if wide {
                        values[r * k + c] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))))
                    } else {
                        values[r * k + c] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                    }
                }
            }
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw FactorImportError(file, "row \(bad / k), factor \(bad % k + 1) is \(values[bad]), not finite")
        }
        var ids: [String] = []
        var seen: [String: Int] = [:]
        var lineNumber = 0
        // The final newline ends the last id; it does not start another.
        let text = idBytes.last == 0x0A ? idBytes.dropLast() : idBytes[...]
        for line in text.split(separator: 0x0A, omittingEmptySubsequences: false) where !text.isEmpty {
            lineNumber += 1
            var line = line
            if line.last == 0x0D { line = line.dropLast() }
            if let bad = idProblem(line) { throw FactorImportError(idsFile, line: lineNumber, "id \(bad)") }
            let id = String(decoding: line, as: UTF8.self)
            if let first = seen[id] { throw FactorImportError(idsFile, line: lineNumber, "id \(id) repeats line \(first)") }
            seen[id] = lineNumber
            ids.append(id)
        }
        guard ids.count == rows else { throw FactorImportError(idsFile, "\(ids.count) ids for the \(rows) rows of \(file)") }
        return FactorTable(ids: ids, factors: k, values: values)
    }

    /// Users and items together: the factor counts must agree and neither side be empty.
    package static func model(users: FactorTable, items: FactorTable) throws(FactorImportError) -> ALSModel {
        guard users.factors == items.factors else {
            throw FactorImportError("factors", "users have \(users.factors) factors and items \(items.factors): they must agree")
        }
        guard (1...1024).contains(users.factors) else { throw FactorImportError("factors", "\(users.factors) factors; 1 to 1024 are supported") }
        return ALSModel(factors: users.factors, userIDs: users.ids, itemIDs: items.ids, userFactors: users.values, itemFactors: items.values)
    }

    /// What is wrong with an id, or nil.
    static func idProblem(_ id: some Collection<UInt8>) -> String? {
        if id.isEmpty { return "is empty" }
        if id.count > maxIDBytes { return "is longer than \(maxIDBytes) bytes" }
        if id.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0x2C }) { return "holds a control character or a comma" }
        if String(validating: id, as: UTF8.self) == nil { return "is not UTF-8" }
        return nil
    }

    /// `(rows, k, float64?, fortran order?, data offset)` of an `.npy` file (format 1.0, 2.0, 3.0).
    static func npyHeader(_ b: [UInt8], file: String) throws(FactorImportError) -> (Int, Int, Bool, Bool, Int) {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard b.count >= 10, Array(b[0..<6]) == magic else { throw FactorImportError(file, "not an .npy file (no \\x93NUMPY magic)") }
        let major = b[6]
        let headerLength: Int
        let start: Int
        switch major {
        case 1:
            headerLength = Int(b[8]) | Int(b[9]) << 8
            start = 10
        case 2, 3:
            guard b.count >= 12 else { throw FactorImportError(file, "truncated .npy header") }
            headerLength = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24
            start = 12
        default: throw FactorImportError(file, ".npy format version \(major) is not supported (1, 2 or 3)")
        }
        guard b.count >= start + headerLength else { throw FactorImportError(file, "truncated .npy header") }
        let text = String(decoding: b[start..<(start + headerLength)], as: UTF8.self)
        func value(_ key: String) -> Substring? {
            guard let r = text.range(of: "'\(key)':") else { return nil }
            return text[r.upperBound...].drop(while: { $0 == " " })
        }
        guard let descr = value("descr") else { throw FactorImportError(file, "the .npy header has no descr") }
        let wide: Bool
        if descr.hasPrefix("'<f4'") || descr.hasPrefix("'f4'") {
            wide = false
        } else if descr.hasPrefix("'<f8'") || descr.hasPrefix("'f8'") {
            wide = true
        } else {
            throw FactorImportError(file, "dtype \(descr.prefix(while: { $0 != "," })) is not supported: little-endian float32 (<f4) or float64 (<f8)")
        }
        guard let order = value("fortran_order") else { throw FactorImportError(file, "the .npy header has no fortran_order") }
        let fortran = order.hasPrefix("True")
        guard let shape = value("shape"), shape.first == "(", let close = shape.firstIndex(of: ")") else {
            throw FactorImportError(file, "the .npy header has no shape")
        }
        let dims = shape[shape.index(after: shape.startIndex)..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard dims.count == 2, let rows = Int(dims[0]), let k = Int(dims[1]), rows > 0, k > 0 else {
            throw FactorImportError(file, "shape (\(dims.joined(separator: ", "))) is not 2-D (rows, factors) with both > 0")
        }
        return (rows, k, wide, fortran, start + headerLength)
    }
}
