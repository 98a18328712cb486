/// Clock correction and the credit window (docs/ratings-method.md, "Clocks" and "Late data").
public enum ClockCorrection {
    /// What one event becomes once placed on the hub's clock.
    public enum Verdict: Sendable, Hashable {
        /// Credited, at this hub time.
        case credited(PlacedEvent)
        /// Corrected time later than receive time + `futureSkewToleranceMs`: the box's clock changed.
        case skewed
        /// Corrected time earlier than receive time − `lateHorizonMs`: stored, not credited.
        case late
    }

    /// Places `event` on the hub's clock with its connection's offset and judges it against its receive
    /// time. The judgement uses the event's own receive time (not the time of the computation), so a
    /// rebuild from the stored events always gives the same answer.
    public static func place(_ event: RatedEvent, offsetMs: Int64, parameters: RatingsParameters) -> Verdict {
        let time = event.boxTime &+ offsetMs
        if time > event.receivedAt &+ parameters.futureSkewToleranceMs { return .skewed }
        if time < event.receivedAt &- parameters.lateHorizonMs { return .late }
        return .credited(PlacedEvent(time: time, kind: event.kind))
    }

    /// A box's creditable events on the hub's clock, and what was left out.
    public struct Placement: Sendable, Hashable {
        /// Sorted by hub time; events at the same time keep their order in the input (connections in the
        /// order given, events in each connection's order).
        public var events: [PlacedEvent]
        /// Events left out as skewed.
        public var skewed: Int
        /// Events left out as late.
        public var late: Int
    }

    /// Places every event of a box's connections (give them in the order they were made, events in
    /// `seq` order) and sorts the credited ones by hub time, stably.
    public static func place(_ connections: [ConnectionLog], parameters: RatingsParameters) -> Placement {
        var placed: [(order: Int, event: PlacedEvent)] = []
        var skewed = 0
        var late = 0
        for connection in connections {
            let offset = connection.offsetMs
            for event in connection.events {
                switch place(event, offsetMs: offset, parameters: parameters) {
                case .credited(let e): placed.append((placed.count, e))
                case .skewed: skewed += 1
                case .late: late += 1
                }
            }
        }
        placed.sort { ($0.event.time, $0.order) < ($1.event.time, $1.order) }
        return Placement(events: placed.map(\.event), skewed: skewed, late: late)
    }
}
