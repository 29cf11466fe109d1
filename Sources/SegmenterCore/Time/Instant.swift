import Foundation

/// A point in time as nanoseconds since 1970-01-01T00:00:00Z.
///
/// Integer nanoseconds keep RFC 3339's nine fractional digits exact, so ordering by
/// (`ts`, `event_id`) never depends on floating-point rounding.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public init(seconds: Int64) { self.nanoseconds = seconds * 1_000_000_000 }

    public static let nanosPerSecond: Int64 = 1_000_000_000
    public static let nanosPerHour: Int64 = 3_600_000_000_000

    /// Whole seconds since the epoch, rounded towards minus infinity.
    public var epochSeconds: Int64 { floorDiv(nanoseconds, Instant.nanosPerSecond) }

    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public func adding(seconds: Int64) -> Instant { Instant(nanoseconds: nanoseconds + seconds * Instant.nanosPerSecond) }

    /// Hours from `earlier` to `self`, fractional.
    public func hours(since earlier: Instant) -> Double {
        Double(nanoseconds - earlier.nanoseconds) / Double(Instant.nanosPerHour)
    }

    /// RFC 3339 in UTC with as many fractional digits as needed (none, 3, 6 or 9).
    public var description: String { RFC3339.format(self) }
}

/// Division that rounds towards minus infinity (Swift's `/` truncates towards zero).
@inline(__always) func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = floorDiv(y, 400)
    let yearOfEra = y - era * 400
    let monthIndex = month > 2 ? month - 3 : month + 9
    let dayOfYear = (153 * monthIndex + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
}

/// The civil date of a count of days since 1970-01-01.
func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let z = days + 719_468
    let era = floorDiv(z, 146_097)
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
}

/// As RFC 3339 text in JSON (reports people read).
extension Instant: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard case let .success(instant) = RFC3339.parse(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 time: \(text)"))
        }
        self = instant
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension Instant {
    /// The wall clock now. For the edges only (commit stamps, reports, the hybrid clock): the
    /// pure core takes `now` as a parameter and never calls this.
    public static func wallClock() -> Instant { Instant(nanoseconds: Int64(Date().timeIntervalSince1970 * 1e9)) }

    /// The same instant as a Foundation date (for APIs that take one).
    public var date: Date { Date(timeIntervalSince1970: Double(nanoseconds) / 1e9) }
}
