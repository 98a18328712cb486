/// Late data (docs/ratings-method.md, "Late data"): which minutes of a box to recompute when events arrive
/// after the box's minutes were already credited.
public enum LateData {
    /// The minutes to recompute: `fromMinute` up to `toMinute` (exclusive), or up to the horizon when
    /// `toMinute` is nil.
    public struct Window: Sendable, Hashable {
        public var fromMinute: Int64
        public var toMinute: Int64?

        public init(fromMinute: Int64, toMinute: Int64?) {
            self.fromMinute = fromMinute
            self.toMinute = toMinute
        }

        public func contains(minute: Int64) -> Bool {
            minute >= fromMinute && (toMinute.map { minute < $0 } ?? true)
        }
    }

    /// What to do with a batch of arrived events.
    public struct Plan: Sendable, Hashable {
        /// The minutes whose credit may change; nil when no arrived event is creditable.
        public var window: Window?
        /// The creditable arrived events, placed and sorted (to merge with the stored ones).
        public var credited: [PlacedEvent]
        /// Arrived events stored but not credited.
        public var skewed: Int
        public var late: Int
    }

    /// Plans the recomputation for `arrived` events of a box, given its already credited events `existing`
    /// (placed, sorted). Outside the returned window, the box's credit with and without the arrivals is the
    /// same (property-tested), so only the window needs recomputing, with all events.
    ///
    /// The window starts at the minute of (earliest arrival − `dwellMs`): an arrival can only change what came
    /// before it by cutting short a tune that started less than a dwell earlier. It ends after the minute in
    /// which the tune in effect after the first stored tune-ending event following the latest arrival ends:
    /// from there on, both timelines show the same thing since the same event (and capping is reset by it).
    public static func plan(
        existing: [PlacedEvent], arrived: [ConnectionLog], parameters: RatingsParameters = .default
    ) -> Plan {
        let placement = ClockCorrection.place(arrived, parameters: parameters)
        guard let first = placement.events.first, let last = placement.events.last else {
            return Plan(window: nil, credited: [], skewed: placement.skewed, late: placement.late)
        }
        let from = minuteIndex(first.time - parameters.dwellMs)
        let window = Window(
            fromMinute: from, toMinute: convergence(after: last.time, in: existing).map { minuteIndex($0) + 1 })
        return Plan(window: window, credited: placement.events, skewed: placement.skewed, late: placement.late)
    }

    /// The time from which `existing` alone decides the box's state, whatever was inserted at or before `time`.
    static func convergence(after time: Int64, in existing: [PlacedEvent]) -> Int64? {
        guard let i = existing.firstIndex(where: { $0.time > time && $0.kind.endsTune }) else { return nil }
        guard case .tune(let channel, let mode) = existing[i].kind else { return existing[i].time }
        for e in existing[(i + 1)...] where e.kind.endsTune {
            if case .tune(channel, mode) = e.kind { continue }
            return e.time
        }
        return nil
    }
}
