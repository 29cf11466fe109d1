import Testing
@testable import SegmenterCore

/// When the clock alone can next change a user's segments or KPI values (their timer).
@Suite struct TimeTriggerTests {
    static let calendar = DayCalendar(identifier: "Europe/Berlin")!
    /// Noon local time, 2026-03-10 (day numbers count from 1970-01-01).
    static let now = calendar.start(of: calendar.day(of: Instant(seconds: 1_773_140_400))).adding(seconds: 12 * 3600)
    static var today: DayNumber { calendar.day(of: now) }

    static func user(signedUpDaysAgo days: Int32?) -> UserProfile {
        var profile = UserProfile()
        profile.signupAt = days.map { calendar.start(of: today - $0).adding(seconds: 9 * 3600) }
        return profile
    }

    static func nextChange(_ rule: String, kpi: String? = nil, signedUpDaysAgo days: Int32?) throws -> Instant? {
        let catalog = SegmentCatalog(
            segments: [try SegmentDefinition(name: "s", ruleText: rule)],
            kpis: try kpi.map { [try KPIDefinition(name: "k", kind: .avg, expressionText: $0, segments: nil)] } ?? [])
        return catalog.evaluate(profile: user(signedUpDaysAgo: days), days: [:], now: now, calendar: calendar).nextChange
    }

    /// Given a rule comparing `days_since_signup` with a constant, the timer is the midnight at
    /// which the value reaches it (or the one after); past every threshold there is none, so a
    /// day rollover wakes only the users whose membership can change.
    @Test(arguments: [
        // (rule, signed up days ago, days from today's start to the timer; nil: no timer)
        ("days_since_signup <= 7", 3 as Int32?, 4 as Int32?),      // 7 reached at signup + 7 (no flip yet; woken anyway)
        ("days_since_signup <= 7", 7, 1),                          // 8 (out) at signup + 8
        ("days_since_signup <= 7", 20, nil),                       // out for good
        ("days_since_signup > 2.5", 1, 2),                         // 3 (in) at signup + 3
        ("days_since_signup between 1 and 3", 0, 1),
        ("days_since_signup between 1 and 3", 3, 1),
        ("days_since_signup between 1 and 3", 9, nil),
        ("days_since_signup in (5, 30)", 10, 20),
        ("days_since_signup <= 7", nil, nil),                      // no signup: null until one arrives
        ("days_since_signup > -1", -1, 1),                         // a sign-up dated tomorrow (up to 24 h ahead is valid)
    ])
    func daysSinceSignupComparedWithAConstant(rule: String, signedUpDaysAgo: Int32?, timerInDays: Int32?) throws {
        let expected = timerInDays.map { Self.calendar.start(of: Self.today + $0) }
        #expect(try Self.nextChange(rule, signedUpDaysAgo: signedUpDaysAgo) == expected)
    }

    /// Used any other way (here a KPI's value), it changes at every local midnight.
    @Test func daysSinceSignupUsedAsAValueWakesEveryMidnight() throws {
        let next = try Self.nextChange("days_since_signup <= 7", kpi: "days_since_signup", signedUpDaysAgo: 20)
        #expect(next == Self.calendar.start(of: Self.today + 1))
    }
}
