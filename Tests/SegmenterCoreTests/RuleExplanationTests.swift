import Testing
@testable import SegmenterCore

/// `explain`: every sub-expression's value, three-valued, and why each null is null.
@Suite struct RuleExplanationTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let rule: String
        let value: RuleValue
        /// Words the reason for the top-level null must contain (nil: not null).
        let why: String?
        var testDescription: String { rule }
    }

    /// A user with no sign-up, no `region` attribute, 120 spent over 30 days and no activity.
    static func features(_ feature: Feature) -> FeatureValue {
        switch feature {
        case .spend: .money(cents: 12_000)
        case .activities: .number(0)
        case .attribute("plan"): .string("pro")
        case .attribute: .null
        case .hoursSinceSignup, .signupDate, .daysSinceSignup, .activitiesSinceSignup: .null
        default: .number(1)
        }
    }

    @Test(arguments: [
        Row(rule: "attr.region = 'eu' and spend(30d) > 100", value: .null, why: "attr.region = 'eu' is null"),
        Row(rule: "attr.region = 'eu' and spend(30d) > 500", value: .bool(false), why: nil),  // false decides an and
        Row(rule: "attr.region = 'eu' or spend(30d) > 100", value: .bool(true), why: nil),   // true decides an or
        Row(rule: "attr.region = 'eu' or spend(30d) > 500", value: .null, why: "unknown"),
        Row(rule: "not attr.region = 'eu'", value: .null, why: "attr.region = 'eu' is null"),
        Row(rule: "attr.region", value: .null, why: "the user has no attribute region"),
        Row(rule: "hours_since_signup between 1 and 5", value: .null, why: "no sign-up seen"),
        Row(rule: "spend(30d) between 100 and 200", value: .bool(true), why: nil),
        Row(rule: "attr.region in ('eu', 'us')", value: .null, why: "attr.region is null"),
        Row(rule: "attr.plan in ('pro', 'team')", value: .bool(true), why: nil),
        Row(rule: "spend(30d) / activities(30d) > 1", value: .null, why: "spend(30d) / activities(30d) is null"),
        Row(rule: "spend(30d) / activities(30d) >= 0", value: .null, why: "division by zero"),
        Row(rule: "attr.plan > 3", value: .null, why: "a string and a number cannot be compared"),
    ])
    func table(_ row: Row) throws {
        let rule = try RuleParser.parseRule(row.rule)
        let explained = rule.explain(source: row.rule, Self.features)
        #expect(explained.value == row.value && explained.text == row.rule)
        if let why = row.why {
            #expect(explained.whyNull?.contains(why) == true, "\(explained.lines().joined(separator: "\n"))")
        } else {
            #expect(explained.whyNull == nil)
        }
    }

    @Test func everySubExpressionIsShownWithItsValue() throws {
        let text = "attr.plan = 'pro' and (spend(30d) > 500 or attr.region is null)"
        let explained = try RuleParser.parseRule(text).explain(source: text, Self.features)
        #expect(explained.lines() == [
            "attr.plan = 'pro' and (spend(30d) > 500 or attr.region is null)  → true",
            "  attr.plan = 'pro'  → true",
            "    attr.plan  → 'pro'",
            "    'pro'  → 'pro'",
            "  spend(30d) > 500 or attr.region is null  → true",
            "    spend(30d) > 500  → false",
            "      spend(30d)  → 120",
            "      500  → 500",
            "    attr.region is null  → true",
            "      attr.region  → null (the user has no attribute region)",
        ])
    }

    @Test func theNextChangeIsTheTimerTheStoreHoldsWithItsCauseAndWhatItChanges() throws {
        let catalog = SegmentCatalog(segments: [try SegmentDefinition(name: "big_spenders", ruleText: "spend(30d) > 500")])
        let t0 = Instant(seconds: 1_793_527_200)  // 2026-11-01T10:00:00Z
        var profile = UserProfile()
        var days: [DayNumber: DayAggregate] = [:]
        for (id, offset, cents) in [("c1", 0, Int64(40_000)), ("c2", 5, Int64(20_000))] {
            let event = UserEvent(eventID: id, userID: "u1", ts: t0.adding(seconds: Int64(offset) * 86_400), body: .billing(cents: cents))
            if let change = profile.apply(event, calendar: .utc) { days[change.day, default: DayAggregate()] += change.delta }
        }
        let now = t0.adding(seconds: 6 * 86_400)
        let explanation = catalog.explain(userID: "u1", profile: profile, days: days, now: now, calendar: .utc)
        let timer = catalog.evaluate(profile: profile, days: days, now: now, calendar: .utc).nextChange
        #expect(explanation.nextChange?.instant == timer)
        #expect(explanation.nextChange?.changes == ["leaves big_spenders"])
        #expect(explanation.nextChange?.reason == "the events of 2026-11-01 leave the 30-day window")
        #expect(explanation.segments.map(\.member) == [true, true])
    }
}
