import Metrics

extension Metrics.Timer {
    /// Records a `Duration` (swift-metrics 2.x takes integers of a unit).
    public func record(_ duration: Duration) {
        let (s, atto) = duration.components
        recordNanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
