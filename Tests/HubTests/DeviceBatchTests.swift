import ArgusSupport
import Testing

@testable import ArgusStore
@testable import CommandRuntime
@testable import Hub
@testable import HubAPI
@testable import HubGateway

/// Reading a bulk registration body (no store): the rows, their reasons, and what is refused whole.
@Suite("Device batch parsing")
struct DeviceBatchTests {
    func csv(_ s: String) throws -> [(line: Int, row: DeviceBatch.Row)] { try DeviceBatch.parseCSV(Array(s.utf8)) }

    @Test func csvHeaderIsOptionalAndTagsAreSemicolonSeparated() throws {
        let withHeader = try csv("ID, Model ,tags\r\nb-1,m1,a;b\r\n\r\nb-2,m1\n")
        #expect(withHeader.map(\.line) == [2, 4])
        #expect(withHeader.map(\.row) == [.box(id: "b-1", model: "m1", tags: ["a", "b"]), .box(id: "b-2", model: "m1", tags: [])])
        let without = try csv("b-1,m1,a")
        #expect(without.map(\.line) == [1] && without.map(\.row) == [.box(id: "b-1", model: "m1", tags: ["a"])])
    }

    @Test func csvMalformedRowsAreInvalidWithTheirLine() throws {
        let rows = try csv("b-1,m1,a,b\nb-2\nb 3,m1\nb-4,m1,a;;b\n").map(\.row)
        #expect(
            rows == [
                .invalid(id: "b-1", reason: "line 1: expected id,model[,tags] (2 or 3 fields), got 4"),
                .invalid(id: "b-2", reason: "line 2: expected id,model[,tags] (2 or 3 fields), got 1"),
                .invalid(id: nil, reason: "line 3: id must be 1 to 64 characters of letters, digits and ._:-"),
                .invalid(id: "b-4", reason: "line 4: tags[] must be 1 to 32 characters of letters, digits and ._:-"),
            ])
    }

    @Test func csvThatIsNotTextOrHasNoBoxIsUnreadable() {
        #expect(throws: DeviceBatch.Unreadable.self) { try csv("b-1,m1\u{0}") }
        #expect(throws: DeviceBatch.Unreadable.self) { try DeviceBatch.parseCSV([0x62, 0x2C, 0xFF]) }
        #expect(throws: DeviceBatch.Unreadable.self) { try csv("\r\n\n") }
        #expect(throws: DeviceBatch.Unreadable.self) { try csv("id,name\nb-1,m1") }
    }

    @Test func rowsPastTheLimitAreInvalidInBothFormats() throws {
        let n = DeviceBatch.maxBoxes + 2
        let text = (0..<n).map { "b-\($0),m1" }.joined(separator: "\n")
        let rows = try csv(text).map(\.row)
        #expect(rows.count == n)
        #expect(rows[DeviceBatch.maxBoxes - 1] == .box(id: "b-\(DeviceBatch.maxBoxes - 1)", model: "m1", tags: []))
        #expect(rows[DeviceBatch.maxBoxes] == .invalid(id: "b-\(DeviceBatch.maxBoxes)", reason: "batch limit 1000"))
        let json = "{\"devices\":[" + (0..<n).map { "{\"id\":\"b-\($0)\",\"model\":\"m1\"}" }.joined(separator: ",") + "]}"
        let jrows = try DeviceBatch.parseJSON(Array(json.utf8))
        #expect(jrows.count == n && jrows.last == .invalid(id: "b-\(n - 1)", reason: "batch limit 1000"))
        #expect(jrows.prefix(DeviceBatch.maxBoxes).allSatisfy { if case .box = $0 { true } else { false } })
    }

    @Test func repeatsKeepTheFirstValidRow() {
        let rows: [DeviceBatch.Row] = [
            .invalid(id: "a", reason: "x"), .box(id: "a", model: "m", tags: []),
            .box(id: "b", model: "m", tags: []), .box(id: "a", model: "n", tags: []),
        ]
        #expect(
            DeviceBatch.refusingRepeats(rows) == [
                rows[0], rows[1], rows[2],
                .invalid(id: "a", reason: "duplicate id in this batch (first at index 1)"),
            ])
    }

    @Test func contentType() {
        #expect(DeviceBatch.isCSV("text/csv") && DeviceBatch.isCSV("Text/CSV; charset=utf-8"))
        #expect(!DeviceBatch.isCSV("application/json") && !DeviceBatch.isCSV(nil) && !DeviceBatch.isCSV("text/csvx"))
    }
}
