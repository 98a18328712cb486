import Testing

@testable import ArgusSupport

@Suite("RateLimitedLog and Wakeup")
struct SupportTests {
    @Test("a burst gives one line, and the next line says how many were folded")
    func folds() async throws {
        let log = RateLimitedLog(every: .milliseconds(200))
        var lines: [Int] = []
        for _ in 0..<50 { log.event { lines.append($0) } }
        #expect(lines == [0])
        try await Task.sleep(for: .milliseconds(250))
        log.event { lines.append($0) }
        #expect(lines == [0, 49])
    }

    @Test("signals while the consumer is busy fold into one wake-up")
    func wakeupFolds() async {
        let w = Wakeup()
        for _ in 0..<10 { w.signal() }
        w.finish()
        var wakes = 0
        for await _ in w.signals { wakes += 1 }
        #expect(wakes == 1)
    }
}
