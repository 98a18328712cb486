/// Every log metadata key the hub uses, in one place: dotted, lower-case names grouped by
/// subject (`stb.*` a box, `api.*` the operator API, `spool.*`, `store.*`, ...), so that log
/// queries can rely on them and a new log line reuses an existing key.
public enum LogKey {
    /// `api.actor`
    public static let apiActor = "api.actor"
    /// `api.cap`
    public static let apiCap = "api.cap"
    /// `api.url`
    public static let apiURL = "api.url"
    /// `attempt`
    public static let attempt = "attempt"
    /// `audit.action`
    public static let auditAction = "audit.action"
    /// `boxes`
    public static let boxes = "boxes"
    /// `cap`
    public static let cap = "cap"
    /// `close.code`
    public static let closeCode = "close.code"
    /// `closes.folded`
    public static let closesFolded = "closes.folded"
    /// `collection`
    public static let collection = "collection"
    /// `count`
    public static let count = "count"
    /// `devices`
    public static let devices = "devices"
    /// `drain.timeout.s`
    public static let drainTimeoutSeconds = "drain.timeout.s"
    /// `dropped`
    public static let dropped = "dropped"
    /// `drops.folded`
    public static let dropsFolded = "drops.folded"
    /// The error, as text.
    public static let error = "error"
    /// `fd.limit`
    public static let fdLimit = "fd.limit"
    /// `firmware.version`
    public static let firmwareVersion = "firmware.version"
    /// `gateway.cap`
    public static let gatewayCap = "gateway.cap"
    /// `gateway.url`
    public static let gatewayURL = "gateway.url"
    /// `http.method`
    public static let httpMethod = "http.method"
    /// `http.path`
    public static let httpPath = "http.path"
    /// `http.remote`
    public static let httpRemote = "http.remote"
    /// A command job's id.
    public static let job = "job"
    /// `ms`
    public static let milliseconds = "ms"
    /// `mongoc.domain`
    public static let mongocDomain = "mongoc.domain"
    /// `mongoc.message`
    public static let mongocMessage = "mongoc.message"
    /// `node`
    public static let node = "node"
    /// `presence.offline`
    public static let presenceOffline = "presence.offline"
    /// `problem`
    public static let problem = "problem"
    /// `reason`
    public static let reason = "reason"
    /// `refusals.folded`
    public static let refusalsFolded = "refusals.folded"
    /// `requested`
    public static let requested = "requested"
    /// `retry.in`
    public static let retryIn = "retry.in"
    /// `sessions`
    public static let sessions = "sessions"
    /// `spool.bytes`
    public static let spoolBytes = "spool.bytes"
    /// `spool.segment`
    public static let spoolSegment = "spool.segment"
    /// A box's id.
    public static let stbID = "stb.id"
    /// A box's session id.
    public static let stbSession = "stb.session"
    /// `store.database`
    public static let storeDatabase = "store.database"
    /// `streams`
    public static let streams = "streams"
    /// `token.file`
    public static let tokenFile = "token.file"
    /// `token.id`
    public static let tokenID = "token.id"
    /// `updates`
    public static let updates = "updates"
    /// An EPG source's id.
    public static let epgSource = "epg.source"
    /// A URL fetched.
    public static let url = "url"
    /// A UTC day number (days since 1970).
    public static let day = "day"
    /// `recommend.version`
    public static let recommendVersion = "recommend.version"
    /// `recommend.promoted`
    public static let recommendPromoted = "recommend.promoted"
}
