import Foundation

/// When reconciliation runs: `every: 1h`, or a five-field cron expression
/// (`minute hour day-of-month month day-of-week`, with `*`, lists, ranges and `/step`),
/// read in the configured time zone.
public enum Schedule: Equatable, Sendable {
    case every(seconds: Int64)
    case cron(CronExpression)

    /// The first instant strictly after `instant` at which a run is due (by the wall clock).
    public func next(after instant: Instant, timeZone: TimeZone) -> Instant {
        switch self {
        case let .every(seconds): return instant.adding(seconds: seconds)
        case let .cron(expression): return expression.next(after: instant, timeZone: timeZone)
        }
    }
}

public struct CronExpression: Equatable, Sendable, CustomStringConvertible {
    public let description: String
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    /// Cron's rule: when both day fields are restricted, a day matching either one is due.
    let daysRestricted: Bool, weekdaysRestricted: Bool

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(_ text: String) throws {
        let fields = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(description: "a cron expression has 5 fields (minute hour day-of-month month day-of-week), got \(fields.count) in '\(text)'")
        }
        description = text
        minutes = try Self.field(fields[0], name: "minute", range: 0...59)
        hours = try Self.field(fields[1], name: "hour", range: 0...23)
        days = try Self.field(fields[2], name: "day-of-month", range: 1...31)
        months = try Self.field(fields[3], name: "month", range: 1...12)
        // 7 is Sunday too.
        weekdays = Set(try Self.field(fields[4], name: "day-of-week", range: 0...7).map { $0 % 7 })
        daysRestricted = fields[2] != "*"
        weekdaysRestricted = fields[4] != "*"
        // Only the day of the month restricts the day: some chosen month must have a chosen day.
        if daysRestricted && !weekdaysRestricted && !months.contains(where: { month in days.contains { $0 <= Self.longestMonth[month - 1] } }) {
            throw ParseError(description: "'\(text)' can never fire: no chosen month has day \(days.sorted().map(String.init).joined(separator: ","))")
        }
    }

    /// Days in each month at most (February: 29, in leap years).
    private static let longestMonth = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

    private static func field(_ text: String, name: String, range: ClosedRange<Int>) throws -> Set<Int> {
        var values: Set<Int> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard (1...2).contains(pieces.count) else { throw ParseError(description: "bad \(name) field '\(text)'") }
            let step = pieces.count == 2 ? Int(pieces[1]) : 1
            guard let step, step > 0 else { throw ParseError(description: "bad step in \(name) field '\(text)'") }
            var bounds: ClosedRange<Int>
            if pieces[0] == "*" {
                bounds = range
            } else {
                let ends = pieces[0].split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
                guard (1...2).contains(ends.count), let low = ends.first!, let high = ends.last!, low <= high,
                      range.contains(low), range.contains(high)
                else { throw ParseError(description: "\(name) field '\(text)': values must lie in \(range.lowerBound)-\(range.upperBound)") }
                bounds = low...(pieces.count == 2 && ends.count == 1 ? range.upperBound : high)
            }
            values.formUnion(stride(from: bounds.lowerBound, through: bounds.upperBound, by: step))
        }
        return values
    }

    func next(after instant: Instant, timeZone: TimeZone) -> Instant {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let start = Date(timeIntervalSince1970: TimeInterval(instant.epochSeconds / 60 * 60 + 60))
        var date = start
        // At most a few years of skipping whole months, days and hours.
        for _ in 0..<200_000 {
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .weekday], from: date)
            if !months.contains(c.month!) {
                date = calendar.date(from: DateComponents(year: c.year, month: c.month! + 1, day: 1))!
                continue
            }
            let dayMatches = days.contains(c.day!), weekdayMatches = weekdays.contains(c.weekday! - 1)
            let dayDue = daysRestricted && weekdaysRestricted ? (dayMatches || weekdayMatches) : (dayMatches && weekdayMatches)
            if !dayDue {
                date = calendar.startOfDay(for: calendar.date(byAdding: .day, value: 1, to: date)!)
                continue
            }
            if !hours.contains(c.hour!) {
                date = calendar.date(from: DateComponents(year: c.year, month: c.month, day: c.day, hour: c.hour! + 1))!
                continue
            }
            if !minutes.contains(c.minute!) {
                date = date.addingTimeInterval(60)
                continue
            }
            return Instant(seconds: Int64(date.timeIntervalSince1970))
        }
        return Instant(seconds: Int64(start.timeIntervalSince1970) + 366 * 86_400)
    }
}
