import STBProtocol

/// A metric threshold rule, e.g. `tempC > 80 for 300 s`.
public struct ThresholdRule: Sendable, Equatable {
    public enum Comparison: String, Sendable { case above = ">", below = "<" }
    public var metric: String
    public var comparison: Comparison
    public var value: Double
    /// How long the condition must hold, by the box's clock.
    public var forSeconds: Int

    public init(metric: String, comparison: Comparison, value: Double, forSeconds: Int) {
        self.metric = metric
        self.comparison = comparison
        self.value = value
        self.forSeconds = forSeconds
    }

    /// The rule's name, e.g. `tempC>80for300s`.
    public var name: String { "\(metric)\(comparison.rawValue)\(value.formatted)for\(forSeconds)s" }

    /// Parses `metric>value/seconds` or `metric<value/seconds`, e.g. `tempC>80/300`.
    public static func parse(_ text: String) -> ThresholdRule? {
        let cmp: Comparison
        let parts: [Substring]
        if text.contains(">") {
            cmp = .above; parts = text.split(separator: ">", maxSplits: 1)
        } else if text.contains("<") {
            cmp = .below; parts = text.split(separator: "<", maxSplits: 1)
        } else {
            return nil
        }
        guard parts.count == 2, MetricsSample.fields.contains(where: { $0.name == String(parts[0]) }) else { return nil }
        let rest = parts[1].split(separator: "/", maxSplits: 1)
        guard rest.count == 2, let v = Double(rest[0]), let s = Int(rest[1]), s >= 0 else { return nil }
        return ThresholdRule(metric: String(parts[0]), comparison: cmp, value: v, forSeconds: s)
    }
}

extension Double {
    var formatted: String { self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}

/// A change of an alarm's state, decided by ``AlarmEvaluator``.
public enum AlarmChange: Sendable, Equatable {
    /// `key` identifies the condition (rule and target); at most one alarm per key is active.
    case raise(key: String, rule: String, target: String, details: [String: String])
    case clear(key: String)
}

/// Watches telemetry for alarm conditions, by the boxes' own clocks (so simulated fleets with
/// a fast clock trigger them too). Pure and deterministic: the applier feeds it each round's
/// messages in order and writes the changes it returns.
///
/// - Threshold rules: a box's figure beyond a value for `forSeconds` raises; back within
///   clears.
/// - Channel outage, seen across the fleet: among boxes tuned to a channel, the share that
///   reported `play_error` on it within the last `outageWindow` reaches `outageShare` (with at
///   least `outageMinViewers` viewers) raises; below half that share clears.
public struct AlarmEvaluator: Sendable {
    public var rules: [ThresholdRule]
    public var outageShare: Double
    public var outageMinViewers: Int
    public var outageWindowMillis: Int64

    struct Since: Hashable { var device: String; var rule: Int }
    private var beyondSince: [Since: Int64] = [:]
    private var raisedThresholds: Set<Since> = []
    private var tunedTo: [String: String] = [:]  // device -> channel
    private var viewers: [String: Set<String>] = [:]  // channel -> devices
    private var lastError: [String: [String: Int64]] = [:]  // channel -> device -> ts
    private var channelClock: [String: Int64] = [:]
    private var raisedOutages: Set<String> = []

    public init(rules: [ThresholdRule] = [], outageShare: Double = 0.2, outageMinViewers: Int = 5, outageWindowSeconds: Int = 60) {
        self.rules = rules
        self.outageShare = outageShare
        self.outageMinViewers = outageMinViewers
        self.outageWindowMillis = Int64(outageWindowSeconds) * 1000
    }

    /// Alarms currently raised by this evaluator.
    public var activeKeys: Set<String> {
        Set(raisedThresholds.map { "\(rules[$0.rule].name)|\($0.device)" }).union(raisedOutages.map { "channel_outage|\($0)" })
    }

    public mutating func metrics(_ device: String, _ m: MetricsSample, at ts: Int64) -> [AlarmChange] {
        var out: [AlarmChange] = []
        for (i, rule) in rules.enumerated() {
            guard let path = MetricsSample.fields.first(where: { $0.name == rule.metric })?.path, let v = m[keyPath: path] else { continue }
            let k = Since(device: device, rule: i)
            let beyond = rule.comparison == .above ? v > rule.value : v < rule.value
            if beyond {
                let since = beyondSince[k] ?? ts
                beyondSince[k] = since
                if ts - since >= Int64(rule.forSeconds) * 1000, !raisedThresholds.contains(k) {
                    raisedThresholds.insert(k)
                    out.append(
                        .raise(
                            key: "\(rule.name)|\(device)", rule: rule.name, target: device,
                            details: [rule.metric: v.formatted, "since": String(since)]))
                }
            } else {
                beyondSince[k] = nil
                if raisedThresholds.remove(k) != nil { out.append(.clear(key: "\(rule.name)|\(device)")) }
            }
        }
        return out
    }

    public mutating func event(_ device: String, _ e: ViewingEvent, at ts: Int64) -> [AlarmChange] {
        switch e.kind {
        case .tune:
            leave(device)
            if let ch = e.channel { tunedTo[device] = ch; viewers[ch, default: []].insert(device) }
        case .leave, .standbyOn:
            leave(device)
        case .playError:
            if let ch = e.channel ?? tunedTo[device] { lastError[ch, default: [:]][device] = ts }
        default:
            break
        }
        if let ch = e.channel ?? tunedTo[device] {
            channelClock[ch] = max(channelClock[ch] ?? ts, ts)
            return evaluate(ch)
        }
        return []
    }

    private mutating func leave(_ device: String) {
        if let old = tunedTo.removeValue(forKey: device) {
            viewers[old]?.remove(device)
            if viewers[old]?.isEmpty == true { viewers[old] = nil }
        }
    }

    private mutating func evaluate(_ ch: String) -> [AlarmChange] {
        let now = channelClock[ch] ?? 0
        var errs = lastError[ch] ?? [:]
        errs = errs.filter { now - $0.value <= outageWindowMillis }
        lastError[ch] = errs.isEmpty ? nil : errs
        let watching = viewers[ch] ?? []
        let audience = watching.union(errs.keys)
        guard audience.count >= outageMinViewers else {
            if raisedOutages.contains(ch) && errs.isEmpty { raisedOutages.remove(ch); return [.clear(key: "channel_outage|\(ch)")] }
            return []
        }
        let share = Double(errs.count) / Double(audience.count)
        if share >= outageShare, !raisedOutages.contains(ch) {
            raisedOutages.insert(ch)
            return [
                .raise(
                    key: "channel_outage|\(ch)", rule: "channel_outage", target: ch,
                    details: [
                        "errorBoxes": String(errs.count), "viewers": String(audience.count),
                        "share": String((share * 1000).rounded() / 1000),
                    ])
            ]
        }
        if share < outageShare / 2, raisedOutages.remove(ch) != nil { return [.clear(key: "channel_outage|\(ch)")] }
        return []
    }
}
