import Testing
@testable import SegmenterCore

@Suite struct JSONParserTests {
    @Test func parsesEscapesAndSurrogates() throws {
        let value = try JSONParser.parse(Array(#"{"a":"x\"\\\/\n\u00e9\ud83d\ude00","b":[1,-2.5e3,true,null]}"#.utf8))
        #expect(value["a"] == .string("x\"\\/\n\u{e9}\u{1F600}"))
        #expect(value["b"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .null]))
    }

    @Test(arguments: ["", "{", "{\"a\":}", "[1,]", "01", "1.", "{\"a\":1}x", "\"\u{01}\"", "\"\\ud800\"", "tru", String(repeating: "[", count: 100)])
    func rejectsMalformedJSON(text: String) {
        #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse(Array(text.utf8)) }
    }
}
