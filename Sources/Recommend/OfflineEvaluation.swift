/// What `argus-hub recommend eval` runs: merge repeats, hold out, fit, score ALS and popularity on
/// the same users and the same test items.
package struct OfflineEvaluation: Sendable {
    /// Where the test items come from.
    package enum TestSource: Sendable {
        /// A per-user holdout of the interactions.
        case holdout(HoldoutMode, fraction: Double, seed: UInt64)
        /// A separate file (already split, e.g. by the benchmark), mapped onto the training names.
        case log(InteractionLog)
    }

    /// The ALS parameters.
    package var parameters: ALSParameters
    /// How watch time becomes confidence.
    package var scaling: ConfidenceScaling
    /// The k of the metrics.
    package var k = 10

    /// An evaluation with `parameters` and `scaling`, at k = 10.
    package init(parameters: ALSParameters, scaling: ConfidenceScaling) {
        self.parameters = parameters
        self.scaling = scaling
    }

    /// The outcome.
    package struct Report: Sendable {
        /// Users, items and distinct pairs used for training.
        package let users: Int, items: Int, trainPairs: Int
        /// Test pairs scored, and test rows dropped (user or item unknown in training).
        package let testPairs: Int, testDropped: Int
        /// ALS's metrics.
        package let als: RankingMetrics
        /// The popularity baseline's metrics.
        package let popularity: RankingMetrics
        /// The fitted model.
        package let model: ALSModel
        /// Seconds spent in `ALSTrainer.fit` (confidence matrix built beforehand).
        package let fitSeconds: Double
    }

    /// Runs it. Refuses empty data, a single user, a time holdout without timestamps, no user
    /// with a test pair, and training that diverges.
    package func run(_ log: InteractionLog, test source: TestSource) throws -> Report {
        try Holdout.checkUsable(log)
        try scaling.validate()
        try parameters.validate()
        let all = UserHistories(log)
        let train: UserHistories
        var relevant: [[Int32]]
        var dropped = 0
        switch source {
        case .holdout(let mode, let fraction, let seed):
            if mode == .time && log.timestamp == nil {
                throw InteractionError(.unusable, line: nil, "a time holdout needs a timestamp column; use --holdout random")
            }
            let split = try Holdout.split(all, mode: mode, fraction: fraction, seed: seed)
            train = split.train
            relevant = split.test.itemSets()
        case .log(let testLog):
            train = all
            (relevant, dropped) = Holdout.mapTest(testLog, onto: log)
        }
        let matrix = train.confidenceMatrix(scaling)
        let clock = ContinuousClock()
        let start = clock.now
        let fitted = try ALSTrainer.fit(matrix, parameters: parameters)
        let elapsed = clock.now - start
        let users = relevant.indices.filter { !relevant[$0].isEmpty }
        guard !users.isEmpty else {
            throw InteractionError(.unusable, line: nil, "no user has a test pair: a holdout needs users with at least two distinct items")
        }
        let tests = users.map { relevant[$0] }
        let alsTop = RankingEvaluation.topK(
            userFactors: fitted.userFactors, itemFactors: fitted.itemFactors, factors: parameters.factors, train: matrix, users: users, k: k,
            threads: parameters.threads)
        let popTop = RankingEvaluation.popularityTopK(train: matrix, users: users, k: k)
        let model = ALSModel(
            factors: parameters.factors, userIDs: log.users.names, itemIDs: log.items.names, userFactors: fitted.userFactors,
            itemFactors: fitted.itemFactors)
        return Report(
            users: train.users, items: train.items, trainPairs: train.pairs, testPairs: tests.reduce(0) { $0 + $1.count }, testDropped: dropped,
            als: RankingEvaluation.metrics(k: k, recommended: alsTop, relevant: tests),
            popularity: RankingEvaluation.metrics(k: k, recommended: popTop, relevant: tests), model: model,
            fitSeconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}
