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

    /// Accepts JSON number syntax, plus a leading `+`-free plain decimal string like `"12.50"`:
    /// `-`? digits (`.` digits)? (`e`|`E` `+`? (`+`|`-`)? digits, below 400 in magnitude)?.
    /// Read byte by byte (every billing event has an amount: measured, the Character-based
    /// reading cost ~10,000 instructions per amount).
    init?(_ text: String) {
        var text = text
        guard let parsed = text.withUTF8({ Self.parse($0) }) else { return nil }
        self = parsed
    }

    private init(negative: Bool, digits: Int64, exponent: Int) {
        self.negative = negative
        self.digits = digits
        self.exponent = exponent
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> ExactDecimal? {
        let (minus, plus, dot, zero, nine) = (UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "0"), UInt8(ascii: "9"))
        let negative = bytes.first == minus
        let start = negative ? 1 : 0
        var end = start  // of the mantissa: the first `e` or `E`
        while end < bytes.count && bytes[end] != UInt8(ascii: "e") && bytes[end] != UInt8(ascii: "E") { end += 1 }
        var exponent = 0
        if end < bytes.count {
            var next = end + 1
            if next < bytes.count && bytes[next] == plus { next += 1 }
            var exponentNegative = false
            if next < bytes.count && (bytes[next] == plus || bytes[next] == minus) { exponentNegative = bytes[next] == minus; next += 1 }
            guard next < bytes.count else { return nil }
            var magnitude = 0
            for byte in bytes[next...] {
                guard byte >= zero && byte <= nine else { return nil }
                magnitude = magnitude * 10 + Int(byte - zero)
                guard magnitude < 400 else { return nil }
            }
            exponent = exponentNegative ? -magnitude : magnitude
        }
        // The mantissa: digits, at most one point, digits on both sides of it.
        var point: Int?
        for index in start..<end where bytes[index] < zero || bytes[index] > nine {
            guard bytes[index] == dot, point == nil else { return nil }
            point = index
        }
        guard (point ?? end) > start, point.map({ $0 + 1 < end }) ?? true else { return nil }
        if let point { exponent -= end - point - 1 }
        // Normalised: leading zeros dropped, trailing zeros into the exponent.
        var digits: Int64 = 0
        var significant = 0
        var pendingZeros = 0
        for index in start..<end where index != point {
            let digit = bytes[index] - zero
            if digit == 0 {
                if significant > 0 { pendingZeros += 1 }
                continue
            }
            for _ in 0..<pendingZeros {
                significant += 1
                guard significant <= 18 else { return nil }
                digits *= 10
            }
            pendingZeros = 0
            significant += 1
            guard significant <= 18 else { return nil }
            digits = digits * 10 + Int64(digit)
        }
        if significant == 0 { return ExactDecimal(negative: negative, digits: 0, exponent: 0) }
        return ExactDecimal(negative: negative, digits: digits, exponent: exponent + pendingZeros)
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

