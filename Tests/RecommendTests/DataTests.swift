import Testing

@testable import Recommend

private func parse(
    _ text: String, _ delimiter: Delimiter = .tsv, columns: ColumnLayout? = .standard, header: Bool = false
) throws(InteractionError)
    -> InteractionLog
{
    try InteractionParser(delimiter: delimiter, columns: columns, header: header).parse(Array(text.utf8))
}

private func failure(_ text: String, _ delimiter: Delimiter = .tsv, columns: ColumnLayout? = .standard, header: Bool = false) -> InteractionError? {
    do {
        _ = try parse(text, delimiter, columns: columns, header: header)
        return nil
    } catch {
        return error
    }
}

@Suite("Interactions parser")
struct ParserTests {
    @Test func tsvWithoutHeader() throws {
        let log = try parse("a\tx\t30\t100\nb\ty\t5\t200\r\n\na\ty\t1.5\t300\n")
        #expect(log.count == 3)
        #expect(log.users.names == ["a", "b"] && log.items.names == ["x", "y"])
        #expect(log.user == [0, 1, 0] && log.item == [0, 1, 1])
        #expect(log.weight == [30, 5, 1.5] && log.timestamp == [100, 200, 300])
    }

    @Test func csvWithHeaderInAnyOrderAndExtraColumns() throws {
        let log = try parse("timestamp,channel,item,user,weight\n7,c1,x,a,2\n8,c2,y,b,3\n", .csv, columns: nil, header: true)
        #expect(log.users.names == ["a", "b"] && log.items.names == ["x", "y"])
        #expect(log.weight == [2, 3] && log.timestamp == [7, 8])
    }

    @Test func columnsByFlagWithoutWeightOrTimestamp() throws {
        let layout = try ColumnLayout(names: ["item", "-", "user"])
        let log = try parse("x,zz,a\ny,zz,b\n", .csv, columns: layout)
        #expect(log.user == [0, 1] && log.item == [0, 1] && log.weight == [1, 1] && log.timestamp == nil)
    }

    @Test func malformedRowsNameTheirLine() throws {
        let short = try #require(failure("a\tx\t1\t1\n\nb\tx\t1\n"))
        #expect(short.kind == .malformedRow && short.line == 3)
        #expect(short.description == "line 3: expected at least 4 fields, found 3")
        let emptyUser = try #require(failure("a\tx\t1\t1\n\tx\t1\t1\n"))
        #expect(emptyUser.kind == .malformedRow && emptyUser.line == 2)
        let header = try #require(failure("user,item,weight\na,x,1\nb,y,oops\n", .csv, columns: nil, header: true))
        #expect(header.kind == .badWeight && header.line == 3 && header.message.contains("\"oops\""))
        let time = try #require(failure("a\tx\t1\tyesterday\n"))
        #expect(time.kind == .badTimestamp && time.line == 1)
    }

    @Test(arguments: ["nan", "NaN", "inf", "-inf", "infinity", "0", "-3", "1e400"])
    func unusableWeightsAreRefused(_ w: String) throws {
        let e = try #require(failure("a\tx\t1\t1\nb\tx\t\(w)\t2\n"))
        #expect(e.kind == .badWeight && e.line == 2)
    }

    @Test func columnsMustNameUserAndItem() throws {
        let e = try #require(failure("u,i\na,x\n", .csv, columns: nil, header: true))
        #expect(e.kind == .badColumns)
        #expect(throws: InteractionError.self) { try ColumnLayout(names: ["user", "item", "user"]) }
    }

    @Test func emptyDataAndSingleUserAreClearErrors() throws {
        let empty = try parse("user\titem\n", columns: nil, header: true)
        #expect(throws: InteractionError(.empty, line: nil, "no interactions: the file has no data rows")) { try Holdout.checkUsable(empty) }
        let one = try parse("a\tx\t1\t1\na\ty\t2\t2\n")
        let e = try #require(throws: InteractionError.self) { try Holdout.checkUsable(one) }
        #expect(e.kind == .singleUser && e.message.contains("only one user"))
    }
}

@Suite("Histories and holdout")
struct HoldoutTests {
    @Test func repeatsAreMergedAndTheTimeHoldoutTakesTheLatest() throws {
        // a: x twice (10 + 5 minutes, last at t=50), y at t=20, z at t=40, w at t=10.
        let log = try parse("a\tx\t10\t1\na\ty\t3\t20\na\tz\t4\t40\na\tx\t5\t50\na\tw\t1\t10\nb\ty\t2\t5\n")
        let h = UserHistories(log)
        #expect(h.pairs == 5)
        let x = try #require(log.items.lookup("x"))
        let ax = try #require((h.start[0]..<h.start[1]).first { h.item[$0] == x })
        #expect(h.weight[ax] == 15 && h.time[ax] == 50)
        let split = try Holdout.split(h, mode: .time, fraction: 0.5, seed: 1)
        // a has 4 pairs: round(0.5·4) = 2 latest (x at 50, z at 40) go to test; b has one pair: all train.
        let z = try #require(log.items.lookup("z"))
        #expect(Set(split.test.itemSets()[0]) == Set([x, z]))
        #expect(split.test.itemSets()[1].isEmpty && split.train.itemSets()[1].count == 1)
        #expect(split.train.pairs + split.test.pairs == h.pairs)
    }

    @Test func randomHoldoutIsSeededAndKeepsATrainingPair() throws {
        var rows = ""
        for u in 0..<20 {
            for i in 0..<(2 + u % 5) { rows += "u\(u)\ti\(i * 7 % 13)\t1\t\(i)\n" }
        }
        let h = UserHistories(try parse(rows))
        let a = try Holdout.split(h, mode: .random, fraction: 0.3, seed: 4)
        let b = try Holdout.split(h, mode: .random, fraction: 0.3, seed: 4)
        #expect(a.test.item == b.test.item && a.train.item == b.train.item)
        for u in 0..<h.users {
            #expect(a.train.itemSets()[u].count >= 1 && a.test.itemSets()[u].count >= 1)
            #expect(Set(a.train.itemSets()[u]).isDisjoint(with: a.test.itemSets()[u]))
        }
    }

    @Test func aSeparateTestFileIsMappedOntoTrainingNames() throws {
        let train = try parse("a\tx\t1\t1\nb\ty\t1\t1\n")
        let test = try parse("b\tx\t1\t2\nc\tx\t1\t2\na\tq\t1\t2\n")
        let (sets, dropped) = Holdout.mapTest(test, onto: train)
        #expect(sets == [[], [0]] && dropped == 2)
    }

    @Test func confidenceScalings() {
        #expect(ConfidenceScaling.logarithmic(alpha: 2, epsilon: 1).confidence(0) == 1)
        #expect(abs(ConfidenceScaling.logarithmic(alpha: 2, epsilon: 10).confidence(10) - Float(1 + 2 * 0.6931471805599453)) < 1e-6)
        #expect(ConfidenceScaling.linear(alpha: 3).confidence(5) == 15)
    }
}

@Suite("Offline evaluation")
struct OfflineEvaluationTests {
    /// Two taste groups with a popular item each: ALS, which sees the groups, beats popularity on
    /// a time holdout, and the report counts what it scored.
    @Test func alsBeatsPopularityOnPlantedTastes() throws {
        var rows = ""
        var rng = SplitMix64(seed: 12)
        for u in 0..<200 {
            let g = u % 2
            var items = Set<Int>()
            while items.count < 10 { items.insert(g * 40 + Int(rng.next() % 40)) }
            for (t, i) in items.sorted().shuffled(using: &rng).enumerated() { rows += "u\(u)\ti\(i)\t\(1 + rng.next() % 60)\t\(t)\n" }
        }
        let log = try InteractionParser(delimiter: .tsv, columns: .standard, header: false).parse(Array(rows.utf8))
        var p = ALSParameters()
        p.factors = 8
        p.regularization = 0.1
        let report = try OfflineEvaluation(parameters: p, scaling: .logarithmic(alpha: 1, epsilon: 1))
            .run(log, test: .holdout(.time, fraction: 0.2, seed: 1))
        #expect(report.users == 200 && report.trainPairs == 1600 && report.testPairs == 400)
        #expect(report.als.users == 200 && report.popularity.users == 200)
        #expect(report.als.precision > 1.5 * report.popularity.precision, "ALS \(report.als) vs popularity \(report.popularity)")
    }

    @Test func noUserWithATestPairIsAClearError() throws {
        let log = try InteractionParser(delimiter: .tsv, columns: .standard, header: false).parse(Array("a\tx\t1\t1\nb\tx\t2\t2\n".utf8))
        let e = try #require(throws: InteractionError.self) {
            try OfflineEvaluation(parameters: ALSParameters(), scaling: .linear(alpha: 1)).run(log, test: .holdout(.random, fraction: 0.2, seed: 1))
        }
        #expect(e.kind == .unusable && e.message.contains("no user has a test pair"))
        let noTime = try InteractionParser(delimiter: .tsv, columns: ColumnLayout(user: 0, item: 1, weight: nil, timestamp: nil), header: false)
            .parse(Array("a\tx\nb\ty\na\ty\n".utf8))
        #expect(throws: InteractionError.self) {
            try OfflineEvaluation(parameters: ALSParameters(), scaling: .linear(alpha: 1)).run(noTime, test: .holdout(.time, fraction: 0.2, seed: 1))
        }
    }
}
