import ArgusSupport
import Foundation
import Logging
import MongoStore
import STBProtocol
import Telemetry

/// One point of a box's metrics series: the mean of each figure over `step`.
package struct MetricPoint: Codable, Sendable, Equatable {
    package var t: Date
    package var samples: Int
    package var values: [String: Double]
}

package struct EventView: Codable, Sendable, Equatable {
    package var t: Date
    package var seq: Int64
    package var bootId: String
    package var event: String
    package var channel: String?
    package var code: String?
}

package struct LogView: Codable, Sendable, Equatable {
    package var t: Date
    package var seq: Int64
    package var bootId: String
    package var level: String
    package var source: String
    package var text: String
}

/// Percentiles of one health figure across the fleet's latest samples.
package struct Distribution: Codable, Sendable, Equatable {
    package var count: Int
    package var p50: Double
    package var p90: Double
    package var p99: Double
    package var max: Double
}

package struct FleetSummary: Codable, Sendable, Equatable {
    package var total: Int
    package var online: Int
    package var byModel: [String: Int]
    package var byFirmware: [String: Int]
    /// Over each box's latest sample in the current and previous hour.
    package var health: [String: Distribution]
}

/// A document of `events` (docs/storage.md), decoded with ``BSONDecoder``.
package struct EventRecord: Codable, Sendable, Equatable {
    package var id: String
    package var device: String
    package var bootId: String
    package var seq: Int64
    /// The box's time.
    package var t: Date
    /// When the hub received it.
    package var received: Date
    package var event: String
    package var channel: String?
    package var code: String?
    package var mode: String?

    package enum CodingKeys: String, CodingKey {
        case id = "_id", device = "d", bootId = "b", seq = "s", t, received = "r", event = "e", channel = "ch", code, mode
    }

    package var view: EventView { EventView(t: t, seq: seq, bootId: bootId, event: event, channel: channel, code: code) }
}

/// A document of `logs` (docs/storage.md), decoded with ``BSONDecoder``.
package struct LogRecord: Codable, Sendable, Equatable {
    package var id: String
    package var device: String
    package var bootId: String
    package var seq: Int64
    package var t: Date
    package var received: Date
    package var level: String
    package var source: String
    package var text: String
    package var tail: String?

    package enum CodingKeys: String, CodingKey {
        case id = "_id", device = "d", bootId = "b", seq = "s", t, received = "r", level = "lvl", source = "src", text = "txt", tail
    }

    package var view: LogView { LogView(t: t, seq: seq, bootId: bootId, level: level, source: source, text: text) }
}

/// One sample of a metrics bucket: `t`, `b`, `s` and the figures it has (by their protocol
/// names, ``MetricsSample/fields``).
package struct MetricSampleRecord: Codable, Sendable, Equatable {
    package var t: Date
    package var bootId: String?
    package var seq: Int64?
    package var values: [String: Double]

    package init(t: Date, bootId: String? = nil, seq: Int64? = nil, values: [String: Double]) {
        self.t = t
        self.bootId = bootId
        self.seq = seq
        self.values = values
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        t = try c.decode(Date.self, forKey: Key("t"))
        bootId = try c.decodeIfPresent(String.self, forKey: Key("b"))
        seq = try c.decodeIfPresent(Int64.self, forKey: Key("s"))
        var values: [String: Double] = [:]
        for f in MetricsSample.fields { if let v = try c.decodeIfPresent(Double.self, forKey: Key(f.name)) { values[f.name] = v } }
        self.values = values
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(t, forKey: Key("t"))
        try c.encodeIfPresent(bootId, forKey: Key("b"))
        try c.encodeIfPresent(seq, forKey: Key("s"))
        for f in MetricsSample.fields { if let v = values[f.name] { try c.encode(v, forKey: Key(f.name)) } }
    }
}

/// A document of `metrics`: one box's samples of one boot and hour.
package struct MetricBucketRecord: Codable, Sendable, Equatable {
    package var id: String
    package var device: String
    package var bootId: String
    package var hour: Date
    /// The highest `seq` stored in the bucket.
    package var last: Int64
    package var samples: [MetricSampleRecord]

    package enum CodingKeys: String, CodingKey { case id = "_id", device = "d", bootId = "b", hour = "h", last, samples }
}

/// Reads of telemetry for the operator API; each is served by an index (docs/storage.md).
/// Documents that do not decode are left out (counted and logged per collection).
package struct TelemetryQueries: Sendable {
    package let store: MongoStore
    package let metricsFailures: DecodeFailures
    package let eventsFailures: DecodeFailures
    package let logsFailures: DecodeFailures

    package init(store: MongoStore, logger: Logger = Logger(label: "argus.store")) {
        self.store = store
        metricsFailures = DecodeFailures(collection: Schema.metrics, logger: logger)
        eventsFailures = DecodeFailures(collection: Schema.events, logger: logger)
        logsFailures = DecodeFailures(collection: Schema.logs, logger: logger)
    }

    package static func ms(_ d: Date) -> Int64 { Int64((d.timeIntervalSince1970 * 1000).rounded()) }

    /// A box's metrics between `from` and `to`, averaged per `step` seconds, and the latest sample.
    package func metrics(device: String, from: Date, to: Date, step: Int) async throws -> (points: [MetricPoint], latest: MetricPoint?) {
        let firstHour = MetricBucketAppend.hour(of: Self.ms(from))
        let docs = try await store.collection(Schema.metrics).find(
            ["d": .string(device), "h": ["$gte": MongoTelemetryStore.date(firstHour), "$lte": .date(to)]], sort: ["h": 1], limit: 24 * 400)
        var samples: [(Int64, [String: Double])] = []
        for bucket in metricsFailures.decodeEach(docs, as: MetricBucketRecord.self) {
            for s in bucket.samples { samples.append((Self.ms(s.t), s.values)) }
        }
        samples.sort { $0.0 < $1.0 }
        let latest = samples.last.map { MetricPoint(t: Date(timeIntervalSince1970: Double($0.0) / 1000), samples: 1, values: $0.1) }
        let lo = Self.ms(from), hi = Self.ms(to), stepMs = Int64(step) * 1000
        var buckets: [Int64: (n: Int, sums: [String: Double], counts: [String: Int])] = [:]
        for (t, values) in samples where t >= lo && t < hi {
            let k = lo + (t - lo) / stepMs * stepMs
            var b = buckets[k] ?? (0, [:], [:])
            b.n += 1
            for (name, v) in values { b.sums[name, default: 0] += v; b.counts[name, default: 0] += 1 }
            buckets[k] = b
        }
        let points = buckets.sorted { $0.key < $1.key }.map { k, b -> MetricPoint in
            var means: [String: Double] = [:]
            for (name, sum) in b.sums { means[name] = sum / Double(max(1, b.counts[name, default: 1])) }
            return MetricPoint(t: Date(timeIntervalSince1970: Double(k) / 1000), samples: b.n, values: means)
        }
        return (points, latest)
    }

    package func events(device: String, from: Date, to: Date, limit: Int) async throws -> [EventView] {
        let docs = try await store.collection(Schema.events).find(
            ["d": .string(device), "t": ["$gte": .date(from), "$lt": .date(to)]], sort: ["t": -1], limit: limit)
        return eventsFailures.decodeEach(docs, as: EventRecord.self).map(\.view)
    }

    package func logs(device: String, from: Date, to: Date, level: String?, limit: Int) async throws -> [LogView] {
        var q: Document = ["d": .string(device), "t": ["$gte": .date(from), "$lt": .date(to)]]
        if let level { q["lvl"] = .string(level) }
        let docs = try await store.collection(Schema.logs).find(q, sort: ["t": -1], limit: limit)
        return logsFailures.decodeEach(docs, as: LogRecord.self).map(\.view)
    }

    package func fleetSummary(now: Date = Date()) async throws -> FleetSummary {
        let devices = store.collection(Schema.devices)
        func groups(_ field: String) async throws -> [String: Int] {
            let rows = try await devices.aggregate([["$group": ["_id": .string("$" + field), "n": ["$sum": 1]]]])
            var out: [String: Int] = [:]
            for r in rows { out[r["_id"]?.stringValue ?? "unknown"] = r["n"]?.intValue ?? 0 }
            return out
        }
        let byModel = try await groups("model")
        let byFirmware = try await groups("firmware")
        let online = try await devices.count(["online": true])
        let since = MetricBucketAppend.hour(of: Self.ms(now)) - MetricBucketAppend.bucketMillis
        let latest = try await store.collection(Schema.metrics).aggregate([
            ["$match": ["h": ["$gte": MongoTelemetryStore.date(since)]]],
            ["$sort": ["h": 1]],
            ["$project": ["d": 1, "latest": ["$arrayElemAt": ["$samples", -1]]]],
            ["$group": ["_id": "$d", "latest": ["$last": "$latest"]]],
        ])
        var series: [String: [Double]] = [:]
        let decoder = BSONDecoder()
        for r in latest {
            guard let value = r["latest"], value != .null else { continue }
            let s: MetricSampleRecord
            do { s = try decoder.decode(MetricSampleRecord.self, fromValue: value, collection: Schema.metrics, id: r["_id"]) } catch {
                metricsFailures.report(error)
                continue
            }
            for (name, v) in s.values { series[name, default: []].append(v) }
        }
        var health: [String: Distribution] = [:]
        for (name, values) in series {
            let v = values.sorted()
            func p(_ q: Double) -> Double { v[min(v.count - 1, Int((q * Double(v.count - 1)).rounded()))] }
            health[name] = Distribution(count: v.count, p50: p(0.5), p90: p(0.9), p99: p(0.99), max: v.last ?? 0)
        }
        return FleetSummary(total: byModel.values.reduce(0, +), online: online, byModel: byModel, byFirmware: byFirmware, health: health)
    }
}
