import ArgumentParser
import Foundation
import Recommend

/// `argus-hub recommend serve-bench`: the serving computation alone, in process (no store, no
/// HTTP): a random items × factors model, and per request what `RecommendService` computes for a
/// box with history: the top n of every item by x_uᵀy_i with its watched channels left out
/// (`ALSModel.recommend`), then for each result the most similar of its 5 most-watched channels
/// (cosine). Prints p50 / p90 / p99 / max per request. Run by scripts/bench/recommend_serve.
struct RecommendServeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-bench", abstract: "Time the recommendation top-N per request, in process (no store, no HTTP).")

    @Option(help: "Items (channels or programmes).")
    var items = 20_000
    @Option(help: "Factors.")
    var factors = 64
    @Option(help: "Users (boxes) in the model.")
    var users = 1_000
    @Option(help: "Requests timed.")
    var requests = 20_000
    @Option(help: "Items per answer.")
    var n = 10
    @Option(help: "Watched items per box (left out; the first 5 are the reasons).")
    var history = 20
    @Option(help: "Seed of the random factors.")
    var seed: UInt64 = 1

    func validate() throws {
        guard items > 0, factors > 0, users > 0, requests > 0, n > 0, history >= 0, history < items else {
            throw ValidationError("--items, --factors, --users, --requests and --n must be > 0, and --history below --items")
        }
    }

    func run() throws {
        var rng = SplitMix64(seed: seed)
        let scale = 1 / Float(factors).squareRoot()
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in (rng.nextUnitFloat() * 2 - 1) * scale } }
        let model = ALSModel(
            factors: factors, userIDs: (0..<users).map { "u\($0)" }, itemIDs: (0..<items).map { "i\($0)" }, userFactors: random(users * factors),
            itemFactors: random(items * factors))
        let histories: [[Int]] = (0..<users).map { _ in (0..<history).map { _ in Int(rng.next() % UInt64(items)) } }
        func cosine(_ a: Int, _ b: Int) -> Float {
            var dot: Float = 0, na: Float = 0, nb: Float = 0
            for k in 0..<factors {
                let x = model.itemFactors[a * factors + k], y = model.itemFactors[b * factors + k]
                dot += x * y
                na += x * x
                nb += y * y
            }
            return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
        }
        let clock = ContinuousClock()
        var times: [Double] = []
        times.reserveCapacity(requests)
        var checksum = 0
        for r in 0..<requests {
            let u = r % users
            let start = clock.now
            let history = histories[u]
            let reasons = history.prefix(5)
            let top = model.recommend(user: u, n: n, exclude: Set(history))
            for s in top {
                let because = reasons.max { cosine($0, s.item) < cosine($1, s.item) }
                checksum &+= s.item &+ (because ?? 0)
            }
            let d = clock.now - start
            times.append(Double(d.components.attoseconds) * 1e-15 + Double(d.components.seconds) * 1e3)
        }
        times.sort()
        func p(_ q: Double) -> Double { times[min(times.count - 1, Int((q / 100 * Double(times.count - 1)).rounded()))] }
        print(
            String(
                format:
                    "in-process top-%ld over %ld items × %ld factors (history %ld): n=%ld  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  (checksum %ld)",
                n, items, factors, history, requests, p(50), p(90), p(99), times.last ?? 0, checksum))
    }
}
