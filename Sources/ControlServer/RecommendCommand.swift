import ArgumentParser
import Foundation
import Recommend

#if canImport(Glibc)
import Glibc
#endif

/// `argus-hub recommend …`: recommendation tools that run without a hub (docs/recommendations.md).
struct RecommendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recommend",
        abstract: "Recommendations: offline evaluation of implicit ALS against popularity; factors trained elsewhere imported as a model version.",
        subcommands: [RecommendEval.self, RecommendImport.self, RecommendPromote.self, RecommendServeBench.self]
    )
}

/// An input file that cannot be read or parsed: exit 1 with the message (file, line) on stderr.
struct RecommendInputError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// `argus-hub recommend eval`: fit implicit ALS on an interactions file and print P@10, MAP@10
/// and NDCG@10 for ALS and for popularity on a per-user holdout (or a given test file), with the
/// fit time and the peak RSS. Bad input exits non-zero with the message on stderr.
struct RecommendEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate implicit ALS and the popularity baseline on an interactions file."
    )

    @Option(help: "Interactions file: rows of user, item, weight (minutes), timestamp.")
    var interactions: String

    @Option(help: "A separate test file in the same format; --interactions is then all training (no holdout).")
    var test: String?

    @Option(help: "tsv or csv (default: csv for a .csv file, tsv otherwise).")
    var format: String?

    @Flag(help: "The first line is a header naming the columns user, item, weight, timestamp.")
    var header = false

    @Option(help: "The column roles in file order, e.g. user,item,weight,timestamp or item,-,user (default: user,item,weight,timestamp).")
    var columns: String?

    @Option(help: "Per-user holdout: time (latest pairs to test) or random.")
    var holdout = "time"

    @Option(name: .customLong("test-fraction"), help: "Fraction of each user's pairs held out.")
    var testFraction = 0.2

    @Option(help: "Latent factors.")
    var factors = 64

    @Option(help: "ALS iterations.")
    var iterations = 15

    @Option(help: "λ, the L2 regularisation.")
    var regularization: Float = 0.01

    @Option(help: "α of the confidence.")
    var alpha = 1.0

    @Option(help: "ε (minutes) of the log confidence 1 + α·log(1 + t/ε).")
    var epsilon = 1.0

    @Option(help: "log (1 + α·log(1 + t/ε)) or linear (α·t, as implicit's alpha).")
    var confidence = "log"

    @Option(name: .customLong("cg-steps"), help: "Conjugate-gradient steps per row and half-iteration.")
    var cgSteps = 3

    @Option(help: "Seed of the initial factors and of the random holdout.")
    var seed: UInt64 = 1

    @Option(help: "Threads: 1, or 2+ for every core.")
    var threads = 2

    @Flag(help: "Print the figures as one JSON object.")
    var json = false

    func validate() throws {
        if let f = format, f != "tsv", f != "csv" { throw ValidationError("--format must be tsv or csv, got \"\(f)\"") }
        if HoldoutMode(rawValue: holdout) == nil { throw ValidationError("--holdout must be time or random, got \"\(holdout)\"") }
        if confidence != "log" && confidence != "linear" { throw ValidationError("--confidence must be log or linear, got \"\(confidence)\"") }
        guard testFraction > 0 && testFraction < 1 else { throw ValidationError("--test-fraction must be between 0 and 1 (exclusive)") }
        guard (1...1024).contains(factors) else { throw ValidationError("--factors must be from 1 to 1024") }
        guard (1...1000).contains(iterations) else { throw ValidationError("--iterations must be from 1 to 1000") }
        guard (1...1024).contains(cgSteps) else { throw ValidationError("--cg-steps must be from 1 to 1024") }
        guard regularization.isFinite && regularization >= 0 else { throw ValidationError("--regularization must be a finite number ≥ 0") }
        guard alpha.isFinite && alpha > 0 else { throw ValidationError("--alpha must be a finite number > 0") }
        guard epsilon.isFinite && epsilon > 0 else { throw ValidationError("--epsilon must be a finite number > 0") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let delimiter: Delimiter = (format.flatMap(Delimiter.init(rawValue:))) ?? (interactions.hasSuffix(".csv") ? .csv : .tsv)
        let layout: ColumnLayout? =
            try columns.map { try ColumnLayout(names: $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)) }
            ?? (header ? nil : .standard)
        let parser = InteractionParser(delimiter: delimiter, columns: layout, header: header)
        let log = try Self.parse(interactions, parser)
        var source = OfflineEvaluation.TestSource.holdout(HoldoutMode(rawValue: holdout) ?? .time, fraction: testFraction, seed: seed)
        if let test { source = .log(try Self.parse(test, parser)) }
        let loaded = clock.now
        var parameters = ALSParameters()
        parameters.factors = factors
        parameters.iterations = iterations
        parameters.regularization = regularization
        parameters.cgSteps = cgSteps
        parameters.seed = seed
        parameters.threads = threads
        let scaling: ConfidenceScaling = confidence == "linear" ? .linear(alpha: alpha) : .logarithmic(alpha: alpha, epsilon: epsilon)
        let report = try OfflineEvaluation(parameters: parameters, scaling: scaling).run(log, test: source)
        let total = clock.now - started
        let loadSeconds = Self.seconds(loaded - started)
        print(
            json ? jsonReport(report, rows: log.count, load: loadSeconds, total: Self.seconds(total)) : textReport(report, rows: log.count, load: loadSeconds))
    }

    /// Reads and parses one file; an unreadable file is a clear error.
    static func parse(_ path: String, _ parser: InteractionParser) throws -> InteractionLog {
        guard let data = FileManager.default.contents(atPath: path) else { throw RecommendInputError(message: "cannot read \(path)") }
        do {
            return try parser.parse([UInt8](data))
        } catch {
            throw RecommendInputError(message: "\(path): \(error)")
        }
    }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

    /// Peak resident set size of this process in MiB (getrusage's ru_maxrss, KiB on Linux).
    static func peakRSSMiB() -> Double {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        return Double(usage.ru_maxrss) / 1024
    }

    func textReport(_ r: OfflineEvaluation.Report, rows: Int, load: Double) -> String {
        func line(_ name: String, _ m: RankingMetrics) -> String {
            name.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "%9.4f %9.4f %9.4f", m.precision, m.map, m.ndcg)
        }
        return [
            "interactions: \(rows) rows, \(r.users) users, \(r.items) items; \(r.trainPairs) training pairs",
            "test: \(r.testPairs) pairs of \(r.als.users) users"
                + (r.testDropped > 0 ? " (\(r.testDropped) test rows dropped: user or item not in training)" : ""),
            "model            P@10    MAP@10   NDCG@10",
            line("ALS", r.als),
            line("popularity", r.popularity),
            String(
                format: "fit: %.2f s (%ld factors, %ld iterations, λ %g, %ld threads); load %.2f s", r.fitSeconds, factors, iterations, regularization, threads,
                load),
            String(format: "peak RSS: %.0f MiB", Self.peakRSSMiB()),
        ].joined(separator: "\n")
    }

    func jsonReport(_ r: OfflineEvaluation.Report, rows: Int, load: Double, total: Double) -> String {
        func m(_ x: RankingMetrics) -> String {
            String(format: "{\"precision_at_10\": %.6f, \"map_at_10\": %.6f, \"ndcg_at_10\": %.6f, \"users\": %ld}", x.precision, x.map, x.ndcg, x.users)
        }
        return String(
            format: "{\"rows\": %ld, \"users\": %ld, \"items\": %ld, \"train_pairs\": %ld, \"test_pairs\": %ld, \"test_dropped\": %ld, ", rows, r.users,
            r.items,
            r.trainPairs, r.testPairs, r.testDropped)
            + "\"als\": \(m(r.als)), \"popularity\": \(m(r.popularity)), "
            + String(
                format: "\"fit_seconds\": %.3f, \"load_seconds\": %.3f, \"total_seconds\": %.3f, \"peak_rss_mib\": %.1f}", r.fitSeconds, load, total,
                Self.peakRSSMiB())
    }
}
