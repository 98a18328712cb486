// The ratings benchmark's generator (scripts/bench/ratings; docs/benchmarks.md, "Ratings queries").
//
// From a seed, synthetic viewing for D days × B boxes × C channels: per box per day a few
// non-overlapping sessions. Each day (one at a time, so memory stays bounded) becomes the
// rollups RatingsBuilder would write (whole fleet and one per `model` value), written with
// RatingsStore.write with a day document like the builder's, and the same sessions as CSV rows
// for the peer (`sessions-<day>.csv`: box,ch,ts,start_ms,end_ms; `boxes.csv`: box,device,model).
//
//   RatingsBenchGen --mongodb-uri URI --database DB --out DIR [--days 30] [--boxes 100000]
//       [--channels 200] [--seed 1] [--end-day N] [--outage-channel 2] [--outage-hour 20]
//       [--outage-day N] [--sessions-only]
//
// Days are [end-day − days, end-day) in days since 1970 (UTC); end-day defaults to yesterday.
// --sessions-only writes the CSV and nothing to the store (for the day built from raw events).
import Foundation
import Logging
import MongoStore
import Ratings
import RatingsRuntime

struct Options {
    var uri = ProcessInfo.processInfo.environment["MONGODB_URI"] ?? ""
    var database = "ratings_bench"
    var out = "."
    var days = 30
    var boxes = 100_000
    var channels = 200
    var seed: UInt64 = 1
    var endDay = Int64(Date().timeIntervalSince1970 / 86_400) - 1
    var outageChannel = 2
    var outageHour: Int64 = 20
    var outageDay: Int64?
    var sessionsOnly = false

    static func parse(_ args: [String]) -> Options {
        var o = Options()
        var i = 0
        func value() -> String {
            i += 1
            guard i < args.count else { fail("\(args[i - 1]) needs a value") }
            return args[i]
        }
        func int(_ s: String) -> Int64 {
            guard let v = Int64(s) else { fail("not an integer: \(s)") }
            return v
        }
        while i < args.count {
            switch args[i] {
            case "--mongodb-uri": o.uri = value()
            case "--database": o.database = value()
            case "--out": o.out = value()
            case "--days": o.days = Int(int(value()))
            case "--boxes": o.boxes = Int(int(value()))
            case "--channels": o.channels = Int(int(value()))
            case "--seed": o.seed = UInt64(bitPattern: int(value()))
            case "--end-day": o.endDay = int(value())
            case "--outage-channel": o.outageChannel = Int(int(value()))
            case "--outage-hour": o.outageHour = int(value())
            case "--outage-day": o.outageDay = int(value())
            case "--sessions-only": o.sessionsOnly = true
            default: fail("unknown argument \(args[i])")
            }
            i += 1
        }
        guard o.days > 0, o.boxes > 0, (1...999).contains(o.channels), (0..<24).contains(o.outageHour) else {
            fail("days and boxes must be positive, channels 1–999, outage hour 0–23")
        }
        guard o.sessionsOnly || !o.uri.isEmpty else { fail("--mongodb-uri (or MONGODB_URI) is required") }
        return o
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("RatingsBenchGen: \(message)\n".utf8))
    exit(2)
}

/// Buffered CSV lines to one file.
final class CSVWriter {
    let handle: FileHandle
    var buffer = ""

    init(path: String, header: String) {
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            fail("cannot write \(path)")
        }
        handle = h
        buffer = header + "\n"
    }

    func line(_ s: String) {
        buffer += s
        buffer += "\n"
        if buffer.utf8.count > 1 << 20 { flush() }
    }

    func flush() {
        handle.write(Data(buffer.utf8))
        buffer = ""
    }

    func close() {
        flush()
        try? handle.close()
    }
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

@main
struct RatingsBenchGen {
    static func main() async throws {
        let o = Options.parse(Array(CommandLine.arguments.dropFirst()))
        let firstDay = o.endDay - Int64(o.days)
        let shape = FleetShape(
            boxes: o.boxes, channels: o.channels, seed: o.seed, outageChannel: o.outageChannel, outageDay: o.outageDay ?? (o.endDay - 1),
            outageHour: o.outageHour)
        let viewing = DayViewing(shape: shape)
        let names = (0...o.channels).map(FleetShape.channelName)
        let models = (0..<o.boxes).map(shape.model(of:))
        try FileManager.default.createDirectory(atPath: o.out, withIntermediateDirectories: true)
        let boxesCSV = CSVWriter(path: "\(o.out)/boxes.csv", header: "box,device,model")
        for b in 0..<o.boxes { boxesCSV.line("\(b),\(FleetShape.deviceID(b)),\(models[b])") }
        boxesCSV.close()

        var ratings: RatingsStore?
        var mongo: MongoStore?
        var storeSeconds = 0.0
        if !o.sessionsOnly {
            let m = try MongoStore(uri: o.uri, database: o.database, threads: 2, logger: Logger(label: "ratings-bench-gen"))
            mongo = m
            let r = RatingsStore(store: m)
            try await r.createIndexes()
            let started = ContinuousClock.now
            var docs: [Document] = []
            for b in 0..<o.boxes {
                docs.append(["_id": .string(FleetShape.deviceID(b)), "i": .int(b)])
                if docs.count == 1000 || b == o.boxes - 1 {
                    _ = try await r.boxes.insertMany(docs)
                    docs.removeAll()
                }
            }
            storeSeconds += seconds(ContinuousClock.now - started)
            ratings = r
        }

        var genSeconds = 0.0, sessionsTotal = 0, creditsTotal = 0, cellsTotal = 0
        for day in firstDay..<o.endDay {
            let t0 = ContinuousClock.now
            let csv = CSVWriter(path: "\(o.out)/sessions-\(day).csv", header: "box,ch,ts,start_ms,end_ms")
            var fleet = try Rollup(bucketMinutes: RatingsStore.reachBucketMinutes)
            var bySegment: [String: Rollup] = [:]
            var active: [BoxIndex] = []
            var segmentActive: [String: [BoxIndex]] = [:]
            var sessionCount = 0, creditCount = 0
            for b in 0..<o.boxes {
                let sessions = viewing.sessions(box: b, day: day)
                guard !sessions.isEmpty else { continue }
                for s in sessions { csv.line("\(b),\(s.channel),\(s.timeshift ? 1 : 0),\(s.start),\(s.end)") }
                sessionCount += sessions.count
                let index = BoxIndex(b)
                active.append(index)
                let key = "model=\(models[b])"
                segmentActive[key, default: []].append(index)
                let credits = viewing.credits(sessions, names: names)
                guard !credits.isEmpty else { continue }
                creditCount += credits.count
                let box = BoxCredits(box: index, credits: credits)
                fleet.add(box)
                if bySegment[key] == nil { bySegment[key] = try Rollup(bucketMinutes: RatingsStore.reachBucketMinutes) }
                bySegment[key]?.add(box)
            }
            csv.close()
            let t1 = ContinuousClock.now
            genSeconds += seconds(t1 - t0)
            sessionsTotal += sessionCount
            creditsTotal += creditCount
            var line = "day \(day): \(active.count) active boxes, \(sessionCount) sessions, \(creditCount) credited minutes, gen \(fmt(seconds(t1 - t0))) s"
            if let ratings {
                var rollups = bySegment
                rollups[""] = fleet
                let previous = try await ratings.dayInfos(day..<(day + 1)).first?.version ?? 0
                let info = RatingsStore.DayInfo.synthetic(
                    day: day, version: previous + 1, builtAt: Int64(Date().timeIntervalSince1970 * 1000), active: BoxSet(active),
                    segments: segmentActive.mapValues { BoxSet($0) })
                try await ratings.write(rollups, info)
                let t2 = ContinuousClock.now
                storeSeconds += seconds(t2 - t1)
                let cells = rollups.values.reduce(0) { acc, r in acc + Set(r.audience.keys.map(\.channel)).union(r.reach.keys.map(\.channel)).count }
                cellsTotal += cells
                line += ", store \(fmt(seconds(t2 - t1))) s (\(cells) cell documents)"
            }
            say(line)
        }
        await mongo?.shutdown()
        let summary: [String: Any] = [
            "days": o.days, "boxes": o.boxes, "channels": o.channels, "firstDay": firstDay, "endDay": o.endDay, "sessions": sessionsTotal,
            "credits": creditsTotal, "cells": cellsTotal, "genSeconds": genSeconds, "storeSeconds": storeSeconds,
            "outageChannel": FleetShape.channelName(o.outageChannel), "outageDay": shape.outageDay, "outageHour": o.outageHour,
        ]
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
        say("RESULT " + String(decoding: json, as: UTF8.self))
    }

    /// A line to stdout now (print is block-buffered into a pipe: the driver shows each day as it is written).
    static func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

    static func fmt(_ x: Double) -> String { String(format: "%.2f", x) }
}
