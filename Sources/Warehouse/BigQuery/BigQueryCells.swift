/// BigQuery's REST answers carry every value as a string (or null), typed by the schema.
/// These read them exactly: no value goes through a `Double`.
enum BigQueryCell {
    struct BadValue: Error, CustomStringConvertible {
        let type: String
        let text: String
        var description: String { "cannot read \(type) value \"\(text)\"" }
    }

    /// INT64 (`"42"`), or a NUMERIC/BIGNUMERIC that is whole (`"2.500000000"` is not,
    /// `"250.000000000"` is).
    static func integer(_ text: String, type: String) throws -> Int64 {
        switch type {
        case "INTEGER", "INT64":
            guard let value = Int64(text) else { throw BadValue(type: type, text: text) }
            return value
        case "NUMERIC", "BIGNUMERIC", "DECIMAL", "BIGDECIMAL":
            guard let (units, scale) = decimal(text), scale == 0 || units % power(scale) == 0 else { throw BadValue(type: type, text: text) }
            return scale == 0 ? units : units / power(scale)
        default:
            throw BadValue(type: type, text: text)
        }
    }

    /// A decimal string as an integer and the number of digits after the point.
    static func decimal(_ text: String) -> (units: Int64, scale: Int)? {
        var digits = Substring(text)
        let negative = digits.first == "-"
        if negative || digits.first == "+" { digits = digits.dropFirst() }
        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty || parts.count == 2 else { return nil }
        var fraction = parts.count == 2 ? parts[1] : ""
        while fraction.last == "0" { fraction = fraction.dropLast() }
        guard (whole + fraction).allSatisfy(\.isASCII), let units = Int64(whole.isEmpty && fraction.isEmpty ? "0" : whole + fraction),
              fraction.count <= 18 else { return nil }
        return (negative ? -units : units, fraction.count)
    }

    /// A TIMESTAMP as microseconds since the epoch: the emulator's integer microseconds
    /// (`"1767261600000000"`) or the service's float seconds (`"1.7672616E9"`, `"1767261600.5"`).
    static func timestampMicros(_ text: String) throws -> Int64 {
        if !text.contains(where: { $0 == "." || $0 == "E" || $0 == "e" }), let micros = Int64(text) { return micros }
        // Float seconds, read as an exact decimal with an optional exponent.
        let lower = text.lowercased()
        let mantissa = lower.split(separator: "e", maxSplits: 1).first.map(String.init) ?? lower
        let exponent = lower.contains("e") ? Int(lower.split(separator: "e")[1]) : 0
        guard let exponent, let (units, scale) = decimal(mantissa) else { throw BadValue(type: "TIMESTAMP", text: text) }
        // seconds = units × 10^(exponent − scale); microseconds = units × 10^(exponent − scale + 6)
        let shift = exponent - scale + 6
        if shift >= 0 {
            guard shift <= 18 else { throw BadValue(type: "TIMESTAMP", text: text) }
            let (value, overflow) = units.multipliedReportingOverflow(by: power(shift))
            guard !overflow else { throw BadValue(type: "TIMESTAMP", text: text) }
            return value
        }
        guard shift > -19 else { return 0 }
        let divisor = power(-shift)
        return units >= 0 ? units / divisor : -((-units + divisor - 1) / divisor)
    }

    /// A DATE, `YYYY-MM-DD`, checked.
    static func date(_ text: String) throws -> String {
        let bytes = Array(text.utf8)
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
              bytes.enumerated().allSatisfy({ [4, 7].contains($0.offset) || (48...57).contains($0.element) }) else {
            throw BadValue(type: "DATE", text: text)
        }
        return text
    }

    private static func power(_ exponent: Int) -> Int64 {
        (0..<exponent).reduce(Int64(1)) { value, _ in value * 10 }
    }
}
