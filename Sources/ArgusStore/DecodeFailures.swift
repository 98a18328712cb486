import ArgusSupport
import Logging
import Metrics
import MongoStore
import Synchronization

/// Reports stored documents that do not decode (``BSONDecodingError``): every failed read is
/// counted in `argus_store_decode_errors_total{collection}`, and logged as an error naming
/// the collection, `_id` and field, at most once a minute per document (a corrupt rollout is
/// read on every tick).
package final class DecodeFailures: Sendable {
    package let collection: String
    private let counter: Counter
    private let logger: Logger
    private let lastLogged = Mutex<[String: ContinuousClock.Instant]>([:])
    private let total = Mutex(0)
    /// Failed reads reported so far (what the counter counts, for tests).
    package var reported: Int { total.withLock { $0 } }
    package static let logInterval: Duration = .seconds(60)

    package init(collection: String, logger: Logger) {
        self.collection = collection
        self.logger = logger
        counter = Counter(label: "argus_store_decode_errors_total", dimensions: [("collection", collection)])
    }

    package func report(_ error: BSONDecodingError) {
        counter.increment()
        total.withLock { $0 += 1 }
        let key = error.id.map { "\($0)" } ?? ""
        let now = ContinuousClock.now
        let log = lastLogged.withLock { last -> Bool in
            if let at = last[key], now - at < Self.logInterval { return false }
            if last.count >= 1000 { last.removeAll() }
            last[key] = now
            return true
        }
        if log {
            logger.error(
                "stored document cannot be decoded; skipped",
                metadata: [
                    LogKey.collection: .string(collection), LogKey.error: .string(error.description),
                ])
        }
    }

    /// Decodes a document of this collection; one that does not decode is reported and its
    /// ``BSONDecodingError`` thrown (a single read: the caller answers with the error).
    package func decode<T: Decodable>(_ d: Document, as type: T.Type) throws(BSONDecodingError) -> T {
        do { return try BSONDecoder().decode(type, from: d, collection: collection) } catch {
            report(error)
            throw error
        }
    }

    /// Decodes each document of a list; those that do not decode are reported and left out,
    /// so one bad document never hides the others.
    package func decodeEach<T: Decodable>(_ docs: [Document], as type: T.Type) -> [T] {
        let decoder = BSONDecoder()
        var out: [T] = []
        out.reserveCapacity(docs.count)
        for d in docs {
            do { out.append(try decoder.decode(type, from: d, collection: collection)) } catch { report(error) }
        }
        return out
    }
}
