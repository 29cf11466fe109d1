import Testing
@testable import SegmenterCore

/// Amounts and exchange rates are read byte by byte; these tests hold that reading to the
/// Character-based one it replaced (kept here as the reference), on fixed and random texts.
struct ExactDecimalTests {
    /// The previous reading, Character by Character: the meaning the byte reader must keep.
    struct ReferenceDecimal: Equatable {
        var negative: Bool
        var digits: Int64
        var exponent: Int

        init?(_ text: String) {
            func isDigit(_ c: Character) -> Bool { c.isASCII && c.isNumber }
            var chars = Substring(text)
            negative = chars.first == "-"
            if negative { chars = chars.dropFirst() }
            var mantissa = chars
            var exp = 0
            if let e = chars.firstIndex(where: { $0 == "e" || $0 == "E" }) {
                mantissa = chars[..<e]
                var expText = chars[chars.index(after: e)...]
                if expText.first == "+" { expText = expText.dropFirst() }
                guard let parsed = Int(expText), abs(parsed) < 400 else { return nil }
                exp = parsed
            }
            let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count <= 2, let whole = parts.first, !whole.isEmpty,
                  whole.allSatisfy(isDigit), parts.count == 1 || (!parts[1].isEmpty && parts[1].allSatisfy(isDigit))
            else { return nil }
            var allDigits = String(whole) + (parts.count == 2 ? String(parts[1]) : "")
            exp -= parts.count == 2 ? parts[1].count : 0
            allDigits = String(allDigits.drop(while: { $0 == "0" }))
            while allDigits.last == "0" { allDigits.removeLast(); exp += 1 }
            if allDigits.isEmpty { digits = 0; exponent = 0; return }
            guard allDigits.count <= 18, let value = Int64(allDigits) else { return nil }
            digits = value
            exponent = exp
        }
    }

    static func reading(_ text: String) -> [Int64]? {
        ExactDecimal(text).map { [$0.negative ? 1 : 0, $0.digits, Int64($0.exponent)] }
    }

    static func reference(_ text: String) -> [Int64]? {
        ReferenceDecimal(text).map { [$0.negative ? 1 : 0, $0.digits, Int64($0.exponent)] }
    }

    @Test(arguments: ["12.5", "12.50", "1.2e1", "12.500", "0", "-0", "-0.00", "007.10", "1e+2", "1e++2", "1e+-2", "1e-+2",
                      "1E399", "1e400", "1e-399", "", "-", ".", "5.", ".5", "+5", "--5", "1.2.3", "1e", "1e+", "12,50",
                      "123456789012345678", "1234567890123456789", "1000000000000000000000", "0.000000000000000001",
                      "1\u{301}", "-\u{301}5", "1é2", "١٢", "100e-2", "9223372036854775807"])
    func readsAsTheCharacterReadingDid(_ text: String) {
        #expect(Self.reading(text) == Self.reference(text), "\(text.debugDescription)")
    }

    @Test func randomTextsReadAsTheCharacterReadingDid() {
        var random = SplitMix64(seed: 28)
        let alphabet: [Character] = Array("0000123456789..--++eEx ") + ["\u{301}", "é"]
        var accepted = 0
        for _ in 0..<20_000 {
            let length = Int(random.next() % 24)
            let text = String((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
            let expected = Self.reference(text)
            #expect(Self.reading(text) == expected, "\(text.debugDescription)")
            if expected != nil { accepted += 1 }
        }
        #expect(accepted > 500)  // the texts reach the accepting paths, not only the rejections
    }

    @Test func amountsInCents() throws {
        #expect(try Money.cents(fromDecimal: "12.5").get() == 1250)
        #expect(try Money.cents(fromDecimal: "1.2e1").get() == 1200)
        #expect(throws: DecodeFailure.self) { try Money.cents(fromDecimal: "1.234").get() }
        #expect(Money.convert(cents: 1000, rate: ExchangeRate("1.08")!) == 1080)
        #expect(ExchangeRate("1e7") == nil && ExchangeRate("-1") == nil)
    }
}
