/// A column delimiter of an interactions file.
package enum Delimiter: String, Sendable, CaseIterable {
    /// Tab-separated (`tsv`).
    case tsv
    /// Comma-separated (`csv`), without quoting.
    case csv

    var byte: UInt8 { self == .tsv ? 9 : 44 }
}

/// Which field of a row holds what, counted from 0. Weight and timestamp may be absent: a
/// missing weight is 1, and without timestamps only the random holdout is possible.
package struct ColumnLayout: Sendable, Equatable {
    package var user: Int
    package var item: Int
    package var weight: Int?
    package var timestamp: Int?

    /// `user,item,weight,timestamp`.
    package static let standard = ColumnLayout(user: 0, item: 1, weight: 2, timestamp: 3)

    /// A layout from explicit field indexes.
    package init(user: Int, item: Int, weight: Int?, timestamp: Int?) {
        self.user = user
        self.item = item
        self.weight = weight
        self.timestamp = timestamp
    }

    /// A layout from column names in file order (`user`, `item`, `weight`, `timestamp`; any other
    /// name, e.g. `-`, is a column to skip). `user` and `item` are required, each name at most once.
    package init(names: [String]) throws(InteractionError) {
        var found: [String: Int] = [:]
        for (i, raw) in names.enumerated() {
            let name = raw.trimmingSpaces().lowercased()
            guard ["user", "item", "weight", "timestamp"].contains(name) else { continue }
            if found[name] != nil { throw InteractionError(.badColumns, line: nil, "column \"\(name)\" is named twice") }
            found[name] = i
        }
        guard let u = found["user"], let it = found["item"] else {
            throw InteractionError(.badColumns, line: nil, "the columns must name \"user\" and \"item\" (got \(names.joined(separator: ",")))")
        }
        self.init(user: u, item: it, weight: found["weight"], timestamp: found["timestamp"])
    }

    var width: Int { [user, item, weight ?? 0, timestamp ?? 0].max() ?? 0 }
}

/// Why an interactions file, or the data in it, was refused. `line` is 1-based in the file.
package struct InteractionError: Error, Equatable, CustomStringConvertible {
    /// What went wrong.
    package enum Kind: String, Sendable, Equatable {
        /// Too few fields, or an empty user or item.
        case malformedRow
        /// A weight that is not a number, not finite, or ≤ 0.
        case badWeight
        /// A timestamp that is not a finite number.
        case badTimestamp
        /// The header or `--columns` does not name the needed columns.
        case badColumns
        /// No interactions at all.
        case empty
        /// Only one user: nothing to learn across users.
        case singleUser
        /// The options ask for what the data cannot give (a time holdout without timestamps).
        case unusable
    }

    /// What went wrong.
    package let kind: Kind
    /// The 1-based line, for errors in a row.
    package let line: Int?
    /// A message a person can act on.
    package let message: String

    /// An error of `kind`, on `line` if it belongs to a row.
    package init(_ kind: Kind, line: Int?, _ message: String) {
        self.kind = kind
        self.line = line
        self.message = message
    }

    package var description: String { line.map { "line \($0): \(message)" } ?? message }
}

/// User and item names mapped to dense indexes, in order of first appearance.
package struct IDMap: Sendable, Equatable {
    /// The name of each index.
    package private(set) var names: [String] = []
    private var index: [String: Int32] = [:]

    /// An empty map.
    package init() {}

    /// Number of names.
    package var count: Int { names.count }

    /// The index of `name`, adding it if new.
    package mutating func intern(_ name: String) -> Int32 {
        if let i = index[name] { return i }
        let i = Int32(names.count)
        names.append(name)
        index[name] = i
        return i
    }

    /// The index of `name`, if known.
    package func lookup(_ name: String) -> Int32? { index[name] }
}

/// Interaction rows as parsed: one entry per row, repeats of a (user, item) pair not yet merged.
package struct InteractionLog: Sendable {
    /// User names.
    package var users = IDMap()
    /// Item names.
    package var items = IDMap()
    /// The user of each row.
    package var user: [Int32] = []
    /// The item of each row.
    package var item: [Int32] = []
    /// The weight of each row (watch minutes, or 1 when the file has no weight column).
    package var weight: [Double] = []
    /// The timestamp of each row, or nil when the file has none (any unit: only the order matters).
    package var timestamp: [Double]?

    /// Number of rows.
    package var count: Int { user.count }

    /// An empty log.
    package init() {}
}

/// Parses TSV or CSV interaction files (docs/recommendations.md, "File formats").
package struct InteractionParser: Sendable {
    /// The delimiter.
    package var delimiter: Delimiter
    /// The column layout; nil reads it from the header line.
    package var columns: ColumnLayout?
    /// Whether the first line is a header (named columns, or skipped when `columns` is given).
    package var header: Bool

    /// A parser; `columns == nil` requires `header`.
    package init(delimiter: Delimiter, columns: ColumnLayout?, header: Bool) {
        self.delimiter = delimiter
        self.columns = columns
        self.header = header
    }

    /// Parses the whole file. Blank lines are skipped; a `\r` before a newline is ignored.
    package func parse(_ bytes: [UInt8]) throws(InteractionError) -> InteractionLog {
        var log = InteractionLog()
        var layout = columns
        let sep = delimiter.byte
        var lineNumber = 0
        var start = 0
        var fields: [Range<Int>] = []
        var times: [Double] = []
        let n = bytes.count
        while start < n {
            var end = start
            while end < n && bytes[end] != 10 { end += 1 }
            lineNumber += 1
            var stop = end
            if stop > start && bytes[stop - 1] == 13 { stop -= 1 }
            let lineRange = start..<stop
            start = end + 1
            if lineRange.isEmpty { continue }
            fields.removeAll(keepingCapacity: true)
            var f = lineRange.lowerBound
            for i in lineRange where bytes[i] == sep {
                fields.append(f..<i)
                f = i + 1
            }
            fields.append(f..<lineRange.upperBound)
            if header && lineNumber == 1 {
                if layout == nil {
                    layout = try ColumnLayout(names: fields.map { String(decoding: bytes[$0], as: UTF8.self) })
                }
                continue
            }
            guard let cols = layout else { throw InteractionError(.badColumns, line: nil, "no column layout: give a header or --columns") }
            if log.count == 0 && cols.timestamp != nil { times.reserveCapacity(n / 32) }
            guard fields.count > cols.width else {
                throw InteractionError(.malformedRow, line: lineNumber, "expected at least \(cols.width + 1) fields, found \(fields.count)")
            }
            let u = Self.text(bytes, fields[cols.user])
            let it = Self.text(bytes, fields[cols.item])
            if u.isEmpty { throw InteractionError(.malformedRow, line: lineNumber, "empty user") }
            if it.isEmpty { throw InteractionError(.malformedRow, line: lineNumber, "empty item") }
            var w = 1.0
            if let wc = cols.weight {
                let s = Self.text(bytes, fields[wc])
                guard let v = Double(s) else { throw InteractionError(.badWeight, line: lineNumber, "weight \"\(s)\" is not a number") }
                guard v.isFinite, v > 0 else { throw InteractionError(.badWeight, line: lineNumber, "weight \(s) must be a finite number > 0") }
                w = v
            }
            if let tc = cols.timestamp {
                let s = Self.text(bytes, fields[tc])
                guard let v = Double(s), v.isFinite else {
                    throw InteractionError(.badTimestamp, line: lineNumber, "timestamp \"\(s)\" is not a finite number")
                }
                times.append(v)
            }
            log.user.append(log.users.intern(u))
            log.item.append(log.items.intern(it))
            log.weight.append(w)
        }
        if layout?.timestamp != nil { log.timestamp = times }
        return log
    }

    private static func text(_ bytes: [UInt8], _ r: Range<Int>) -> String {
        var lo = r.lowerBound
        var hi = r.upperBound
        while lo < hi && bytes[lo] == 32 { lo += 1 }
        while hi > lo && bytes[hi - 1] == 32 { hi -= 1 }
        return String(decoding: bytes[lo..<hi], as: UTF8.self)
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
