/// Typed reads: documents decoded with ``BSONDecoder``, errors naming this collection and the
/// document's `_id`. A document that does not decode is never returned as nil: it throws
/// ``BSONDecodingError``.
extension MongoCollection {
    /// Decodes a document read from this collection.
    public func decode<T: Decodable>(_ document: Document, as type: T.Type, decoder: BSONDecoder = BSONDecoder()) throws(BSONDecodingError) -> T {
        try decoder.decode(type, from: document, collection: name)
    }

    /// The first document matching `filter`, decoded; nil only when none matches.
    public func findOneDecoded<T: Decodable>(
        _ filter: Document, as type: T.Type, sort: Document? = nil,
        projection: Document? = nil
    ) async throws -> T? {
        guard let d = try await findOne(filter, sort: sort, projection: projection) else { return nil }
        return try decode(d, as: type)
    }

    /// Every document matching `filter`, decoded; throws the first document's
    /// ``BSONDecodingError``. To skip bad documents instead, `find` and ``decode(_:as:decoder:)``
    /// each one.
    public func findDecoded<T: Decodable>(
        _ filter: Document = [:], as type: T.Type, sort: Document? = nil, limit: Int? = nil,
        skip: Int? = nil, projection: Document? = nil
    ) async throws -> [T] {
        let docs = try await find(filter, sort: sort, limit: limit, skip: skip, projection: projection)
        let decoder = BSONDecoder()
        return try docs.map { d throws(BSONDecodingError) in try decode(d, as: type, decoder: decoder) }
    }
}
