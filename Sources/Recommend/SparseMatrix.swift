/// A compressed-sparse-row matrix of Float32 values: the confidences `c_ui` of the pairs that were
/// seen, rows being users (or items, for the transpose). Column indices in each row are ascending.
package struct SparseMatrix: Sendable, Equatable {
    /// Number of rows.
    package let rows: Int
    /// Number of columns.
    package let columns: Int
    /// Row `r`'s entries are `indptr[r]..<indptr[r + 1]`; `rows + 1` offsets.
    package let indptr: [Int]
    /// Column of each entry.
    package let indices: [Int32]
    /// Value of each entry.
    package let values: [Float]

    /// Number of stored entries.
    package var nonZeros: Int { indices.count }

    /// Builds the matrix from coordinate triplets (one per pair; a caller with repeated pairs
    /// aggregates them first). Entries are ordered by row, then column.
    package init(rows: Int, columns: Int, rowIndex: [Int32], columnIndex: [Int32], values: [Float]) {
        precondition(rowIndex.count == columnIndex.count && rowIndex.count == values.count)
        // Counting sort by column, then a stable counting sort by row: rows end up with ascending columns.
        let byColumn = Self.countingOrder(keys: columnIndex, buckets: columns)
        var rowKeys = [Int32](repeating: 0, count: byColumn.count)
        for (k, e) in byColumn.enumerated() { rowKeys[k] = rowIndex[e] }
        let inner = Self.countingOrder(keys: rowKeys, buckets: rows)
        var ptr = [Int](repeating: 0, count: rows + 1)
        for r in rowIndex { ptr[Int(r) + 1] += 1 }
        for r in 0..<rows { ptr[r + 1] += ptr[r] }
        var idx = [Int32](repeating: 0, count: inner.count)
        var val = [Float](repeating: 0, count: inner.count)
        for (k, e) in inner.enumerated() {
            let original = byColumn[e]
            idx[k] = columnIndex[original]
            val[k] = values[original]
        }
        self.rows = rows
        self.columns = columns
        self.indptr = ptr
        self.indices = idx
        self.values = val
    }

    private init(rows: Int, columns: Int, indptr: [Int], indices: [Int32], values: [Float]) {
        self.rows = rows
        self.columns = columns
        self.indptr = indptr
        self.indices = indices
        self.values = values
    }

    /// The positions of `keys` in stable ascending order of key.
    private static func countingOrder(keys: [Int32], buckets: Int) -> [Int] {
        var start = [Int](repeating: 0, count: buckets + 1)
        for k in keys { start[Int(k) + 1] += 1 }
        for b in 0..<buckets { start[b + 1] += start[b] }
        var order = [Int](repeating: 0, count: keys.count)
        for (i, k) in keys.enumerated() {
            order[start[Int(k)]] = i
            start[Int(k)] += 1
        }
        return order
    }

    /// Row `r`'s entry range.
    package func range(ofRow r: Int) -> Range<Int> { indptr[r]..<indptr[r + 1] }

    /// The transpose (items × users), with ascending columns in each row.
    package func transposed() -> SparseMatrix {
        var ptr = [Int](repeating: 0, count: columns + 1)
        for c in indices { ptr[Int(c) + 1] += 1 }
        for c in 0..<columns { ptr[c + 1] += ptr[c] }
        var next = Array(ptr.dropLast())
        var idx = [Int32](repeating: 0, count: indices.count)
        var val = [Float](repeating: 0, count: indices.count)
        for r in 0..<rows {
            for k in indptr[r]..<indptr[r + 1] {
                let c = Int(indices[k])
                idx[next[c]] = Int32(r)
                val[next[c]] = values[k]
                next[c] += 1
            }
        }
        return SparseMatrix(rows: columns, columns: rows, indptr: ptr, indices: idx, values: val)
    }
}
