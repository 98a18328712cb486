import Ratings

extension RatingsStore.DayInfo {
    /// A day's description for a writer outside this module (the ratings benchmark's generator,
    /// which writes rollups straight from synthetic credit, as the builder would).
    package static func synthetic(
        day: Int64, version: Int, builtAt: Int64, active: BoxSet, events: Int = 0, segments: [String: BoxSet] = [:]
    ) -> RatingsStore.DayInfo {
        RatingsStore.DayInfo(day: day, version: version, builtAt: builtAt, active: active, events: events, skewed: 0, late: 0, segments: segments)
    }
}
