import ArgusTestSupport
import Foundation
import Testing

@testable import MongoStore

// BSONEncoder / BSONDecoder without a database: the mapping, the round trip (also through
// libbson's bytes), and the typed errors.

private enum Color: String, Codable, Equatable, CaseIterable { case red, green, blue }
private enum Level: Int, Codable, Equatable, CaseIterable { case low = 1, mid = 5, high = 9 }

private struct Point: Codable, Equatable { var x: Int; var y: Double }

private struct Everything: Codable, Equatable {
    var name: String
    var flag: Bool
    var int: Int
    var i32: Int32
    var i64: Int64
    var small: Int8
    var unsigned: UInt32
    var double: Double
    var float: Float
    var when: Date
    var optionalPresent: String?
    var optionalAbsent: String?
    var point: Point
    var points: [Point]
    var matrix: [[Int]]
    var holes: [Int?]
    var byName: [String: Int]
    var pointsByName: [String: Point]
    var color: Color
    var level: Level
    var colors: [Color]
    var raw: Document
    var any: BSON
    var anyList: [BSON]
    var oid: ObjectID
    var bytes: Data
}

/// `_id` and a history, as in `executions`.
private struct Execution: Codable, Equatable {
    struct Step: Codable, Equatable { var state: String; var at: Date; var reason: String? }
    var id: String
    var device: String
    var attempts: Int
    var color: Color?
    var history: [Step]
    enum CodingKeys: String, CodingKey { case id = "_id", device, attempts, color, history }
}

private func ms(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }

/// Through libbson and back: what the store would hold.
private func throughLibBSON(_ d: Document) -> Document { d.withBSON { Document(copying: $0) } }

private func sample() -> Everything {
    Everything(
        name: "héllo \u{0} wörld", flag: true, int: -42, i32: 7, i64: Int64.max, small: -8, unsigned: UInt32.max,
        double: 2.5, float: 0.25, when: ms(1_700_000_000_123), optionalPresent: "here", optionalAbsent: nil,
        point: Point(x: 1, y: -0.5), points: [Point(x: 2, y: 3), Point(x: 4, y: 5.5)], matrix: [[1, 2], [], [3]],
        holes: [1, nil, 3], byName: ["a": 1, "b.c": 2], pointsByName: ["p": Point(x: 9, y: 9)], color: .green, level: .high,
        colors: [.red, .blue], raw: ["k": .int32(3), "nested": ["x": "y"], "when": .date(ms(5))], any: ["a": [1, "two", .null]],
        anyList: [.int32(1), .string("s"), .bool(false), .double(1.5)], oid: ObjectID("0123456789abcdef01234567")!,
        bytes: Data([0, 1, 254, 255]))
}

@Suite("BSON Codable")
struct BSONCodableTests {
    @Test func everySupportedTypeRoundTripsAndMapsToItsBSONType() throws {
        let value = sample()
        let doc = try BSONEncoder().encode(value)
        #expect(doc["name"] == .string("héllo \u{0} wörld"))
        #expect(doc["flag"] == .bool(true))
        #expect(doc["int"] == .int64(-42))
        #expect(doc["i32"] == .int32(7))
        #expect(doc["i64"] == .int64(Int64.max))
        #expect(doc["small"] == .int32(-8))
        #expect(doc["unsigned"] == .int64(Int64(UInt32.max)))
        #expect(doc["double"] == .double(2.5))
        #expect(doc["float"] == .double(0.25))
        #expect(doc["when"] == .date(ms(1_700_000_000_123)))
        #expect(doc["optionalPresent"] == .string("here"))
        #expect(doc["optionalAbsent"] == nil, "nil is absent, not null")
        #expect(!doc.keys.contains("optionalAbsent"))
        #expect(doc["point"] == ["x": .int64(1), "y": .double(-0.5)])
        #expect(doc["matrix"] == [[.int64(1), .int64(2)], [], [.int64(3)]])
        #expect(doc["holes"] == [.int64(1), .null, .int64(3)], "a nil inside an array is null")
        #expect(doc["byName"]?.documentValue?["b.c"] == .int64(2))
        #expect(doc["color"] == "green")
        #expect(doc["level"] == .int64(9))
        #expect(doc["raw"] == .document(value.raw), "a Document passes through")
        #expect(doc["any"] == value.any)
        #expect(doc["anyList"] == .array(value.anyList), "int32 stays int32")
        #expect(doc["oid"] == .objectID(value.oid))
        #expect(doc["bytes"] == .binary([0, 1, 254, 255]))
        // Keys in declaration order, as the synthesized encode(to:) writes them.
        #expect(doc.keys.prefix(4) == ["name", "flag", "int", "i32"])

        #expect(try BSONDecoder().decode(Everything.self, from: doc) == value)
        #expect(try BSONDecoder().decode(Everything.self, from: throughLibBSON(doc)) == value)
    }

    @Test func integersDecodeFromInt32Int64AndWholeDoubles() throws {
        struct N: Codable, Equatable { var n: Int; var m: Int32; var d: Double }
        let d = BSONDecoder()
        #expect(try d.decode(N.self, from: ["n": .int32(5), "m": .int64(6), "d": .int32(7)]) == N(n: 5, m: 6, d: 7))
        #expect(try d.decode(N.self, from: ["n": .int64(1 << 40), "m": .int32(-1), "d": .int64(8)]) == N(n: 1 << 40, m: -1, d: 8))
        #expect(try d.decode(N.self, from: ["n": .double(3), "m": .double(-4), "d": .double(0.5)]) == N(n: 3, m: -4, d: 0.5))

        let fraction = #expect(throws: BSONDecodingError.self) { try d.decode(N.self, from: ["n": .double(3.5), "m": 1, "d": 1]) }
        #expect(fraction?.kind == .typeMismatch && fraction?.path == "n")
        let tooBig = #expect(throws: BSONDecodingError.self) { try d.decode(N.self, from: ["n": 1, "m": .int64(1 << 40), "d": 1]) }
        #expect(tooBig?.kind == .invalidValue)
        #expect(tooBig?.description == "document: field \"m\": 1099511627776 (int64) does not fit in Int32")
        let text = #expect(throws: BSONDecodingError.self) { try d.decode(N.self, from: ["n": "1", "m": 1, "d": 1]) }
        #expect(text?.description == "document: field \"n\": expected Int, found string")
    }

    @Test func optionalsAreNilWhenAbsentOrNullButRequiredFieldsAreNot() throws {
        struct O: Codable, Equatable { var a: String?; var b: Int? }
        let d = BSONDecoder()
        #expect(try d.decode(O.self, from: [:]) == O(a: nil, b: nil))
        #expect(try d.decode(O.self, from: ["a": .null, "b": .int32(2), "extra": "ignored"]) == O(a: nil, b: 2))
        #expect(try BSONEncoder().encode(O(a: nil, b: nil)) == [:])
        struct R: Codable { var a: String }
        let e = #expect(throws: BSONDecodingError.self) { try d.decode(R.self, from: ["a": .null]) }
        #expect(e?.kind == .typeMismatch && e?.reason == "expected String, found null")
    }

    @Test func aMissingRequiredFieldNamesCollectionIdAndField() throws {
        let doc: Document = [
            "_id": "job1|stb-7", "device": "stb-7", "attempts": .int32(1),
            "history": [["state": "QUEUED", "at": .date(ms(1))], ["state": "SENT"]],
        ]
        let e = #expect(throws: BSONDecodingError.self) {
            try BSONDecoder().decode(Execution.self, from: doc, collection: "executions")
        }
        #expect(e?.kind == .missingField)
        #expect(e?.collection == "executions" && e?.id == "job1|stb-7" && e?.path == "history[1].at")
        #expect(e?.description == "executions/_id=job1|stb-7: field \"history[1].at\": required field is missing")
    }

    @Test func aWrongTypeNamesTheFieldAndBothTypes() throws {
        let doc: Document = [
            "_id": "job1|stb-7", "device": "stb-7", "attempts": .int32(1),
            "history": [
                ["state": "QUEUED", "at": .date(ms(1))], ["state": "SENT", "at": .date(ms(2))],
                ["state": .int32(3), "at": .date(ms(3))],
            ],
        ]
        let e = #expect(throws: BSONDecodingError.self) {
            try BSONDecoder().decode(Execution.self, from: doc, collection: "executions")
        }
        #expect(e?.kind == .typeMismatch)
        #expect(e?.description == "executions/_id=job1|stb-7: field \"history[2].state\": expected String, found int32")
        // A container of the wrong type, and a date stored as a number.
        let notArray = #expect(throws: BSONDecodingError.self) {
            try BSONDecoder().decode(Execution.self, from: ["_id": "x", "device": "d", "attempts": 1, "history": "[]"], collection: "executions")
        }
        #expect(notArray?.description == "executions/_id=x: field \"history\": expected array, found string")
        let dateAsNumber = #expect(throws: BSONDecodingError.self) {
            try BSONDecoder().decode(Execution.self, from: ["_id": "x", "device": "d", "attempts": 1, "history": [["state": "S", "at": 5]]])
        }
        #expect(dateAsNumber?.description == "_id=x: field \"history[0].at\": expected Date (a BSON datetime), found int64")
    }

    @Test func anUnknownEnumValueIsAnInvalidValueNamingTheField() throws {
        let doc: Document = ["_id": "job1|stb-7", "device": "d", "attempts": 1, "color": "purple", "history": []]
        let e = #expect(throws: BSONDecodingError.self) {
            try BSONDecoder().decode(Execution.self, from: doc, collection: "executions")
        }
        #expect(e?.kind == .invalidValue && e?.path == "color")
        #expect(e?.description.hasPrefix("executions/_id=job1|stb-7: field \"color\": ") == true)
        #expect(e?.reason.contains("purple") == true, "\(String(describing: e))")
        struct L: Codable { var level: Level }
        let unknownInt = #expect(throws: BSONDecodingError.self) {
            try BSONDecoder().decode(L.self, from: ["_id": .int32(12), "level": .int32(4)], collection: "c")
        }
        #expect(unknownInt?.kind == .invalidValue && unknownInt?.path == "level")
        #expect(unknownInt?.description.hasPrefix("c/_id=12: field \"level\": ") == true, "\(String(describing: unknownInt))")
    }

    @Test func aTypesOwnValidationErrorIsReportedAtItsField() throws {
        struct Positive: Codable {
            var n: Int
            struct Refused: Error, CustomStringConvertible { var description: String { "n must be positive" } }
            init(from decoder: any Decoder) throws {
                n = try decoder.container(keyedBy: CodingKeys.self).decode(Int.self, forKey: .n)
                if n <= 0 { throw Refused() }
            }
        }
        struct Outer: Codable { var items: [Positive] }
        let e = #expect(throws: BSONDecodingError.self) {
            try BSONDecoder().decode(Outer.self, from: ["_id": "o", "items": [["n": 1], ["n": 0]]], collection: "c")
        }
        #expect(e?.description == "c/_id=o: field \"items[1]\": n must be positive")
    }

    @Test func aFieldNameWithNULIsRefused() throws {
        let e = #expect(throws: EncodingError.self) { try BSONEncoder().encode(["a\u{0}b": 1]) }
        guard case .invalidValue(_, let context)? = e else { Issue.record("\(String(describing: e))"); return }
        #expect(context.debugDescription == "a BSON field name cannot contain NUL")
    }

    @Test func topLevelValuesThatAreNotDocumentsAreRefused() throws {
        #expect(throws: EncodingError.self) { try BSONEncoder().encode([1, 2]) }
        #expect(try BSONEncoder().encodeValue([1, 2]) == [.int64(1), .int64(2)])
        #expect(try BSONDecoder().decode([Int].self, fromValue: [.int32(1), .double(2)]) == [1, 2])
        let e = #expect(throws: BSONDecodingError.self) { try BSONDecoder().decode([Int].self, from: ["a": 1]) }
        #expect(e?.description == "document: expected array, found document")
    }

    @Test func documentAndBSONAreCodableWithOtherCoders() throws {
        let doc: Document = ["s": "x", "n": .int64(3), "d": .double(1.5), "b": true, "a": [1, .null], "o": ["k": "v"]]
        let json = try JSONEncoder().encode(doc)
        let back = try JSONDecoder().decode(Document.self, from: json)
        for key in doc.keys { #expect(back[key] == doc[key], "\(key)") }
        let oid = ObjectID.generate()
        #expect(try JSONDecoder().decode(ObjectID.self, from: JSONEncoder().encode(oid)) == oid)
    }

    /// A property-style round trip: random records (seeded, so a failure reproduces) survive
    /// encode → libbson bytes → decode unchanged.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func randomRecordsRoundTripThroughLibBSON(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<50 {
            let value = Everything.random(&rng)
            let doc = try BSONEncoder().encode(value)
            let back = try BSONDecoder().decode(Everything.self, from: throughLibBSON(doc))
            #expect(back == value, "seed \(seed)")
        }
    }
}

// MARK: - Random values

private extension Everything {
    static func random(_ g: inout SplitMix64) -> Everything {
        func str(_ alphabet: [Character] = Array("aZ09 .|$_-é✓😀\u{0}\n\"")) -> String {
            String((0..<Int.random(in: 0...12, using: &g)).map { _ in alphabet.randomElement(using: &g)! })
        }
        // Field names: anything but NUL (BSON names are C strings; the encoder refuses NUL).
        func key() -> String { str(Array("aZ09 .|$_-é✓😀\n\"")) }
        func int() -> Int { [Int.min, Int.max, 0, -1, Int(Int32.max) + 1, Int.random(in: -1_000_000...1_000_000, using: &g)].randomElement(using: &g)! }
        func dbl() -> Double { [0, -0.0, 1e308, -1e-308, .infinity, Double.random(in: -1e6...1e6, using: &g)].randomElement(using: &g)! }
        func point() -> Point { Point(x: int(), y: dbl()) }
        func list<T>(_ make: () -> T) -> [T] { (0..<Int.random(in: 0...4, using: &g)).map { _ in make() } }
        func maybe<T>(_ make: () -> T) -> T? { Bool.random(using: &g) ? make() : nil }
        let scalars: [BSON] = [
            .int32(Int32.random(in: .min ... .max, using: &g)), .int64(Int64.random(in: .min ... .max, using: &g)),
            .string(str()), .bool(Bool.random(using: &g)), .null, .double(dbl()),
            .date(ms(Int64.random(in: -1_000_000_000_000...4_000_000_000_000, using: &g))),
        ]
        var raw = Document()
        for _ in 0..<Int.random(in: 0...4, using: &g) { raw["k" + key()] = scalars.randomElement(using: &g)! }
        var byName: [String: Int] = [:]
        for _ in 0..<Int.random(in: 0...4, using: &g) { byName[key()] = int() }
        var pointsByName: [String: Point] = [:]
        for _ in 0..<Int.random(in: 0...4, using: &g) { pointsByName[key()] = point() }
        return Everything(
            name: str(), flag: Bool.random(using: &g), int: int(), i32: Int32.random(in: .min ... .max, using: &g),
            i64: Int64.random(in: .min ... .max, using: &g), small: Int8.random(in: .min ... .max, using: &g),
            unsigned: UInt32.random(in: .min ... .max, using: &g), double: dbl(), float: Float(Int16.random(in: .min ... .max, using: &g)) / 8,
            when: ms(Int64.random(in: -62_135_596_800_000...253_402_300_799_999, using: &g)), optionalPresent: maybe { str() }, optionalAbsent: maybe { str() },
            point: point(), points: list(point), matrix: list { list(int) }, holes: list { maybe(int) }, byName: byName,
            pointsByName: pointsByName,
            color: Color.allCases.randomElement(using: &g)!, level: Level.allCases.randomElement(using: &g)!,
            colors: list { Color.allCases.randomElement(using: &g)! }, raw: raw, any: .document(raw),
            anyList: list { scalars.randomElement(using: &g)! }, oid: ObjectID(bytes: (0..<12).map { _ in UInt8.random(in: 0...255, using: &g) })!,
            bytes: Data(list { UInt8.random(in: 0...255, using: &g) }))
    }
}
