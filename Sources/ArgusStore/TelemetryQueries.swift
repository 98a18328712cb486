import ArgusSupport
import Foundation
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

/// Reads of telemetry for the operator API; each is served by an index (docs/storage.md).
package struct TelemetryQueries: Sendable {
    package let store: MongoStore

    package init(store: MongoStore) {
        self.store = store
    }

    package static func ms(_ d: Date) -> Int64 { Int64((d.timeIntervalSince1970 * 1000).rounded()) }

    /// A box's metrics between `from` and `to`, averaged per `step` seconds, and the latest sample.
    package func metrics(device: String, from: Date, to: Date, step: Int) async throws -> (points: [MetricPoint], latest: MetricPoint?) {
        let firstHour = MetricBucketAppend.hour(of: Self.ms(from))
        let docs = try await store.collection(Schema.metrics).find(
            ["d": .string(device), "h": ["$gte": MongoTelemetryStore.date(firstHour), "$lte": .date(to)]], sort: ["h": 1], limit: 24 * 400)
        var samples: [(Int64, [String: Double])] = []
        for d in docs {
            for s in d["samples"]?.arrayValue ?? [] {
                guard let sd = s.documentValue, let t = sd["t"]?.dateValue else { continue }
                var values: [String: Double] = [:]
                for f in MetricsSample.fields { if let v = sd[f.name]?.doubleValue { values[f.name] = v } }
                samples.append((Self.ms(t), values))
            }
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
        try await store.collection(Schema.events).find(
            ["d": .string(device), "t": ["$gte": .date(from), "$lt": .date(to)]], sort: ["t": -1], limit: limit
        ).map { d in
            EventView(
                t: d["t"]?.dateValue ?? .distantPast, seq: Int64(d["s"]?.intValue ?? 0), bootId: d["b"]?.stringValue ?? "",
                event: d["e"]?.stringValue ?? "", channel: d["ch"]?.stringValue, code: d["code"]?.stringValue)
        }
    }

    package func logs(device: String, from: Date, to: Date, level: String?, limit: Int) async throws -> [LogView] {
        var q: Document = ["d": .string(device), "t": ["$gte": .date(from), "$lt": .date(to)]]
        if let level { q["lvl"] = .string(level) }
        return try await store.collection(Schema.logs).find(q, sort: ["t": -1], limit: limit).map { d in
            LogView(
                t: d["t"]?.dateValue ?? .distantPast, seq: Int64(d["s"]?.intValue ?? 0), bootId: d["b"]?.stringValue ?? "",
                level: d["lvl"]?.stringValue ?? "", source: d["src"]?.stringValue ?? "", text: d["txt"]?.stringValue ?? "")
        }
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
        for r in latest {
            guard let s = r["latest"]?.documentValue else { continue }
            for f in MetricsSample.fields { if let v = s[f.name]?.doubleValue { series[f.name, default: []].append(v) } }
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
