/// A viewing event as Ratings sees it: the hub maps `STBProtocol.ViewingEvent` onto this (same kinds, same
/// raw names), so Ratings depends on nothing but the standard library and swift-crypto.
public enum RatedKind: Sendable, Hashable {
    /// The box shows `channel` in `mode` (`live` when the box does not say).
    case tune(channel: String, mode: ViewingMode = .live)
    case leave
    case standbyOn, standbyOff
    case playStart, playStop, playError
    case appCrash, portalReload

    /// A user action: resets the capping timer. tune, leave, standby_on, standby_off, play_start and
    /// play_stop are; play_error, app_crash and portal_reload (the box's own doing) are not.
    public var isInteraction: Bool {
        switch self {
        case .tune, .leave, .standbyOn, .standbyOff, .playStart, .playStop: true
        case .playError, .appCrash, .portalReload: false
        }
    }

    /// Ends the tune in effect: a tune (to another channel or mode), leave and standby_on. A tune to the
    /// channel and mode already shown changes nothing but the capping timer.
    public var endsTune: Bool {
        switch self {
        case .tune, .leave, .standbyOn: true
        default: false
        }
    }

    /// The wire name (`tune`, `standby_on`, …), as in docs/protocol.md.
    public var wireName: String {
        switch self {
        case .tune: "tune"
        case .leave: "leave"
        case .standbyOn: "standby_on"
        case .standbyOff: "standby_off"
        case .playStart: "play_start"
        case .playStop: "play_stop"
        case .playError: "play_error"
        case .appCrash: "app_crash"
        case .portalReload: "portal_reload"
        }
    }
}

/// One stored viewing event of a box, with the two clocks it carries.
public struct RatedEvent: Sendable, Hashable {
    /// The box's `ts`: ms since the epoch on the box's clock.
    public var boxTime: Int64
    /// When the hub received it, ms since the epoch on the hub's clock.
    public var receivedAt: Int64
    public var kind: RatedKind

    public init(boxTime: Int64, receivedAt: Int64, kind: RatedKind) {
        self.boxTime = boxTime
        self.receivedAt = receivedAt
        self.kind = kind
    }
}

/// The events a box sent on one connection, with that connection's `hello`.
public struct ConnectionLog: Sendable, Hashable {
    /// `hello`'s `ts` (box clock).
    public var helloBoxTime: Int64
    /// When the hub received `hello` (hub clock).
    public var helloReceivedAt: Int64
    /// In the box's order (its `seq`).
    public var events: [RatedEvent]

    public init(helloBoxTime: Int64, helloReceivedAt: Int64, events: [RatedEvent]) {
        self.helloBoxTime = helloBoxTime
        self.helloReceivedAt = helloReceivedAt
        self.events = events
    }

    /// The connection's clock offset: hub time of `hello` − box time of `hello`.
    public var offsetMs: Int64 { helloReceivedAt &- helloBoxTime }
}

/// An event placed on the hub's clock.
public struct PlacedEvent: Sendable, Hashable {
    /// Hub time: the box's `ts` + its connection's offset.
    public var time: Int64
    public var kind: RatedKind

    public init(time: Int64, kind: RatedKind) {
        self.time = time
        self.kind = kind
    }
}
