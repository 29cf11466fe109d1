import Testing
@testable import SegmenterCore

/// Features from state and `now` (SPEC §3, §8), table-driven.
@Suite struct FeatureTests {
    func instant(_ text: String) -> Instant { try! RFC3339.parse(text).get() }

    func event(_ id: String, _ ts: String, _ body: UserEvent.Body) -> UserEvent {
        UserEvent(eventID: id, userID: "u1", ts: instant(ts), body: body)
    }

    /// Applies events the way the store does: profile plus summed day deltas.
    func state(_ events: [UserEvent], calendar: DayCalendar) -> (UserProfile, [DayNumber: DayAggregate]) {
        var profile = UserProfile()
        var days: [DayNumber: DayAggregate] = [:]
        for e in events {
            if let delta = profile.apply(e, calendar: calendar) { days[delta.day, default: DayAggregate()] += delta.delta }
        }
        return (profile, days)
    }

    func features(_ events: [UserEvent], now: String, zone: String = "UTC") -> FeatureEvaluator {
        let calendar = DayCalendar(identifier: zone)!
        let (profile, days) = state(events, calendar: calendar)
        return FeatureEvaluator(profile: profile, days: days, now: instant(now), calendar: calendar)
    }

    @Test func windowEdgesFollowLocalMidnight() {
        // Berlin is UTC+1 in January: 23:30Z on Jan 1 is 00:30 local on Jan 2.
        let events = [
            event("a", "2026-01-01T22:30:00Z", .billing(cents: 100)),   // local Jan 1, 23:30
            event("b", "2026-01-01T23:30:00Z", .billing(cents: 1000)),  // local Jan 2, 00:30
        ]
        let berlin = features(events, now: "2026-01-08T22:59:59Z", zone: "Europe/Berlin")  // local Jan 8, 23:59:59
        #expect(berlin.value(of: .spend(days: 7)) == .money(cents: 1000))  // Jan 2…Jan 8
        #expect(berlin.value(of: .spend(days: 8)) == .money(cents: 1100))
        let nextDay = features(events, now: "2026-01-08T23:00:00Z", zone: "Europe/Berlin")  // local Jan 9, 00:00
        #expect(nextDay.value(of: .spend(days: 7)) == .money(cents: 0))
        let utc = features(events, now: "2026-01-08T23:00:00Z")
        // In UTC both events fall on Jan 1, outside Jan 2…Jan 8 but inside Jan 1…Jan 8.
        #expect(utc.value(of: .spend(days: 7)) == .money(cents: 0))
        #expect(utc.value(of: .spend(days: 8)) == .money(cents: 1100))
    }

    @Test func daysAcrossADSTChangeAreCalendarDays() {
        // Europe/Berlin springs forward on 2026-03-29 (a 23-hour day).
        let calendar = DayCalendar(identifier: "Europe/Berlin")!
        let start29 = calendar.start(of: calendar.day(of: instant("2026-03-29T12:00:00Z")))
        let start30 = calendar.start(of: calendar.day(of: instant("2026-03-30T12:00:00Z")))
        #expect(start29 == instant("2026-03-28T23:00:00Z"))
        #expect(start30 == instant("2026-03-29T22:00:00Z"))
        #expect((start30.nanoseconds - start29.nanoseconds) / Instant.nanosPerHour == 23)
        let events = [
            event("a", "2026-03-29T21:59:00Z", .activity(type: "session", durationMicros: 60_000_000)),  // local 23:59 on the 29th
            event("b", "2026-03-29T22:00:00Z", .activity(type: "session", durationMicros: 120_000_000)), // local 00:00 on the 30th
        ]
        let f = features(events, now: "2026-03-29T22:30:00Z", zone: "Europe/Berlin")
        #expect(f.value(of: .activities(days: 1)) == .number(1))
        #expect(f.value(of: .activeMinutes(days: 1)) == .number(2))
        #expect(f.value(of: .activeDays(days: 2)) == .number(2))
        #expect(f.value(of: .avgDailyMinutes(days: 2)) == .number(1.5))
    }

    @Test func refundsCountNegative() {
        let f = features([
            event("c1", "2026-03-01T10:00:00Z", .billing(cents: 50_000)),
            event("r1", "2026-03-02T10:00:00Z", .billing(cents: -12_550)),
            event("c0", "2026-01-01T10:00:00Z", .billing(cents: 700)),
        ], now: "2026-03-02T12:00:00Z")
        #expect(f.value(of: .spend(days: 30)) == .money(cents: 37_450))
        #expect(f.value(of: .lifetimeSpend) == .money(cents: 38_150))
        #expect(f.value(of: .spend(days: 30)).json == "374.50")
    }

    @Test func nullRulesForAUserWithoutSignupOrActivity() {
        let f = features([event("c1", "2026-03-01T10:00:00Z", .billing(cents: 100))], now: "2026-03-02T00:00:00Z")
        #expect(f.value(of: .signupDate) == .null)
        #expect(f.value(of: .daysSinceSignup) == .null)
        #expect(f.value(of: .hoursSinceSignup) == .null)
        #expect(f.value(of: .activitiesSinceSignup) == .null)
        #expect(f.value(of: .hoursSinceLastActivity) == .null)
        #expect(f.value(of: .attribute("plan")) == .null)
        #expect(f.value(of: .activities(days: 7)) == .number(0))
        #expect(f.value(of: .activeDays(days: 7)) == .number(0))
        #expect(f.value(of: .accounts) == .number(0))
        #expect(f.value(of: .lifetimeSpend) == .money(cents: 100))
    }

    @Test func signupFeaturesAndActivitiesSinceSignupInAnyOrder() {
        let events = [
            event("s2", "2026-03-01T12:00:00Z", .signup(attributes: ["plan": .string("free")])),
            event("a1", "2026-03-01T08:00:00Z", .activity(type: "login", durationMicros: 0)),
            event("a2", "2026-03-01T11:00:00Z", .activity(type: "login", durationMicros: 0)),
            event("a3", "2026-03-02T09:00:00Z", .activity(type: "login", durationMicros: 0)),
            event("s1", "2026-03-01T10:00:00Z", .signup(attributes: ["plan": .string("trial")])),
        ]
        var orders = [events, events.reversed(), [events[1], events[2], events[3], events[0], events[4]]]
        orders.append(events.shuffled())
        for order in orders {
            let f = features(order, now: "2026-03-03T10:00:00Z")
            #expect(f.value(of: .activitiesSinceSignup) == .number(2))  // a2, a3 are at or after 10:00 on Mar 1
            #expect(f.value(of: .signupDate) == .date(DayCalendar.dayNumber(isoDate: "2026-03-01")!))
            #expect(f.value(of: .daysSinceSignup) == .number(2))
            #expect(f.value(of: .hoursSinceSignup) == .number(48))
            #expect(f.value(of: .hoursSinceLastActivity) == .number(25))
            #expect(f.value(of: .attribute("plan")) == .string("free"))  // greatest (ts, event_id) wins
        }
    }

    @Test func accountsAndAttributeRemovalAreLatestWins() {
        let events = [
            event("o1", "2026-03-01T10:00:00Z", .accountOpened(accountID: "a")),
            event("c1", "2026-03-02T10:00:00Z", .accountClosed(accountID: "a")),
            event("o2", "2026-03-01T11:00:00Z", .accountOpened(accountID: "b")),
            event("p1", "2026-03-01T10:00:00Z", .profile(attributes: ["region": .string("eu")])),
            event("p2", "2026-03-02T10:00:00Z", .profile(attributes: ["region": AttributeValue?.none])),
        ]
        for order in [events, events.reversed()] {
            let f = features(order, now: "2026-03-03T00:00:00Z")
            #expect(f.value(of: .accounts) == .number(1))
            #expect(f.value(of: .attribute("region")) == .null)
        }
    }
}
