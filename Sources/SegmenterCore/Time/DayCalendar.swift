import Foundation

/// A calendar day in the configured time zone, as days since 1970-01-01 (local).
public typealias DayNumber = Int32

/// Maps instants to local calendar days and back, in one IANA time zone.
///
/// Days are calendar days (SPEC §3), so a DST change makes a day 23 or 25 hours long. UTC
/// offsets are memoised per hour because `TimeZone` look-ups are slow on the ingest path.
public final class DayCalendar: @unchecked Sendable {
    public let timeZone: TimeZone
    private let fixedOffsetSeconds: Int64?
    private let lock = NSLock()
    private var offsetByHour: [Int64: Int64] = [:]
    private var startOfDay: [DayNumber: Instant] = [:]

    public init?(identifier: String) {
        guard let zone = TimeZone(identifier: identifier) else { return nil }
        self.timeZone = zone
        // A zone without transitions needs no look-ups at all.
        let probe = Date(timeIntervalSince1970: 1_700_000_000)
        if zone.nextDaylightSavingTimeTransition(after: Date(timeIntervalSince1970: 0)) == nil {
            fixedOffsetSeconds = Int64(zone.secondsFromGMT(for: probe))
        } else {
            fixedOffsetSeconds = nil
        }
    }

    public static let utc = DayCalendar(identifier: "UTC")!

    /// Seconds to add to UTC to get local wall time at `instant`.
    public func utcOffsetSeconds(at instant: Instant) -> Int64 {
        if let fixed = fixedOffsetSeconds { return fixed }
        let hour = floorDiv(instant.nanoseconds, Instant.nanosPerHour)
        lock.lock()
        defer { lock.unlock() }
        if let cached = offsetByHour[hour] { return cached }
        // Transitions happen on whole quarter hours at worst; probe the exact instant, not the hour,
        // only when the hour itself contains a transition.
        let startOfHour = Date(timeIntervalSince1970: TimeInterval(hour * 3600))
        let endOfHour = Date(timeIntervalSince1970: TimeInterval(hour * 3600 + 3599))
        let atStart = Int64(timeZone.secondsFromGMT(for: startOfHour))
        let atEnd = Int64(timeZone.secondsFromGMT(for: endOfHour))
        if atStart == atEnd {
            offsetByHour[hour] = atStart
            return atStart
        }
        let date = Date(timeIntervalSince1970: TimeInterval(instant.epochSeconds))
        return Int64(timeZone.secondsFromGMT(for: date))
    }

    /// The local calendar day that contains `instant`.
    public func day(of instant: Instant) -> DayNumber {
        let localSeconds = instant.epochSeconds + utcOffsetSeconds(at: instant)
        return DayNumber(floorDiv(localSeconds, 86_400))
    }

    /// The instant at which local day `day` begins (its first existing local time). Memoised:
    /// timers ask for the same few midnights for every user.
    public func start(of day: DayNumber) -> Instant {
        if let fixed = fixedOffsetSeconds { return Instant(seconds: Int64(day) * 86_400 - fixed) }
        lock.lock()
        if let cached = startOfDay[day] { lock.unlock(); return cached }
        lock.unlock()
        let instant = computeStart(of: day)
        lock.lock()
        startOfDay[day] = instant
        lock.unlock()
        return instant
    }

    private func computeStart(of day: DayNumber) -> Instant {
        let (y, m, d) = civilFromDays(Int64(day))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let components = DateComponents(year: Int(y), month: Int(m), day: Int(d))
        let date = calendar.startOfDay(for: calendar.date(from: components)!)
        return Instant(nanoseconds: Int64(date.timeIntervalSince1970.rounded()) * Instant.nanosPerSecond)
    }

    /// `2026-03-01` for a day number.
    public static func isoDate(_ day: DayNumber) -> String {
        let (y, m, d) = civilFromDays(Int64(day))
        return "\(RFC3339.pad(y, 4))-\(RFC3339.pad(m, 2))-\(RFC3339.pad(d, 2))"
    }

    /// The day number of `2026-03-01`, or nil if it is not a valid date.
    public static func dayNumber(isoDate text: String) -> DayNumber? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int64(parts[0]), let m = Int64(parts[1]), let d = Int64(parts[2]),
              (1...12).contains(m), (1...RFC3339.daysInMonth(year: y, month: m)).contains(d)
        else { return nil }
        return DayNumber(daysFromCivil(year: y, month: m, day: d))
    }
}
