/// Exact money arithmetic in integer cents (SPEC §2, §8).
public enum Money {
    /// The largest amount we accept, in cents (10^15 cents = 10 trillion units), so that
    /// sums over a user's lifetime cannot overflow `Int64`.
    public static let maximumCents: Int64 = 1_000_000_000_000_000

    /// Reads a decimal amount such as `12.5`, `"12.50"`, `1.2e1` or `12.500` exactly into cents.
    /// "At most 2 decimals" is judged by value, so trailing zeros are fine.
    public static func cents(fromDecimal text: String) -> Result<Int64, DecodeFailure> {
        guard let decimal = ExactDecimal(text) else { return .failure("amount \"\(text)\" is not a decimal number") }
        guard decimal.scale(toDecimals: 2) else { return .failure("amount \(text) has more than 2 decimals") }
        guard let cents = decimal.integerValue(atDecimals: 2) else { return .failure("amount \(text) is too large") }
        guard cents <= maximumCents else { return .failure("amount \(text) is too large") }
        return .success(cents)
    }

    /// Converts `cents` with an exchange rate, rounding half to even on the result in cents.
    public static func convert(cents: Int64, rate: ExchangeRate) -> Int64? {
        let (product, overflow) = cents.multipliedReportingOverflow(by: rate.numerator)
        guard !overflow else { return nil }
        return divideRoundingHalfEven(product, by: rate.denominator)
    }

    static func divideRoundingHalfEven(_ value: Int64, by divisor: Int64) -> Int64 {
        var quotient = value / divisor
        let remainder = value % divisor
        let twice = abs(remainder) * 2
        if twice > divisor || (twice == divisor && quotient % 2 != 0) {
            quotient += value < 0 ? -1 : 1
        }
        return quotient
    }

    /// `1234` → `"12.34"`, `-5` → `"-0.05"`: a JSON number with exactly two decimals.
    public static func format(cents: Int64) -> String {
        let sign = cents < 0 ? "-" : ""
        let magnitude = cents.magnitude
        let fraction = magnitude % 100
        return "\(sign)\(magnitude / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

/// `1 CUR = numerator / denominator` units of the configured currency; exact, from config text.
public struct ExchangeRate: Sendable, Equatable {
    public let numerator: Int64
    public let denominator: Int64

    public init?(_ text: String) {
        guard let decimal = ExactDecimal(text), decimal.digits > 0, decimal.exponent >= -12,
              decimal.exponent <= 6, !decimal.negative
        else { return nil }
        if decimal.exponent >= 0 {
            var value = decimal.digits
            for _ in 0..<decimal.exponent { value *= 10 }
            numerator = value
            denominator = 1
        } else {
            numerator = decimal.digits
            var d: Int64 = 1
            for _ in 0 ..< -decimal.exponent { d *= 10 }
            denominator = d
        }
    }
}

/// A decimal number `digits × 10^exponent` read without any floating point.
struct ExactDecimal {
    var negative: Bool
    var digits: Int64
    var exponent: Int

    /// Accepts JSON number syntax, plus a leading `+`-free plain decimal string like `"12.50"`.
    init?(_ text: String) {
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
              whole.allSatisfy(\.isASCIIDigit), parts.count == 1 || (!parts[1].isEmpty && parts[1].allSatisfy(\.isASCIIDigit))
        else { return nil }
        var allDigits = String(whole) + (parts.count == 2 ? String(parts[1]) : "")
        exp -= parts.count == 2 ? parts[1].count : 0
        // Normalise: drop leading zeros, and trailing zeros into the exponent.
        allDigits = String(allDigits.drop(while: { $0 == "0" }))
        while allDigits.last == "0" { allDigits.removeLast(); exp += 1 }
        if allDigits.isEmpty { digits = 0; exponent = 0; return }
        guard allDigits.count <= 18, let value = Int64(allDigits) else { return nil }
        digits = value
        exponent = exp
    }

    /// True if the value has at most `decimals` digits after the point.
    func scale(toDecimals decimals: Int) -> Bool { digits == 0 || exponent >= -decimals }

    /// The value times 10^decimals as an integer, or nil on overflow.
    func integerValue(atDecimals decimals: Int) -> Int64? {
        var value = digits
        let shift = exponent + decimals
        guard shift >= 0 else { return nil }
        for _ in 0..<shift {
            let (next, overflow) = value.multipliedReportingOverflow(by: 10)
            if overflow { return nil }
            value = next
        }
        return negative ? -value : value
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
