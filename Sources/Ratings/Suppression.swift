/// k-anonymity (docs/ratings-method.md, "Privacy"): a cell whose base is below k boxes is not shown.
public enum Cell<Value: Sendable & Hashable>: Sendable, Hashable {
    case value(Value)
    /// The base was below k: the value is withheld.
    case suppressed

    /// What a suppressed cell shows in an answer or a CSV export.
    public static var marker: String { "suppressed" }

    /// `value`, or `.suppressed` when `base` < `k`.
    public init(_ value: Value, base: Int, k: Int = RatingsParameters.default.suppressionK) {
        self = base < k ? .suppressed : .value(value)
    }

    /// The value, nil when suppressed.
    public var value: Value? {
        if case .value(let v) = self { v } else { nil }
    }

    /// The cell as text: `format(value)`, or `Cell.marker`.
    public func text(_ format: (Value) -> String) -> String {
        value.map(format) ?? Self.marker
    }
}
