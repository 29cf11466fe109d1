import Testing
@testable import SegmenterCore

/// Each construct of the rule language and its null behaviour (SPEC §4, §8).
@Suite struct RuleTests {
    /// A user: spend(30d)=600, accounts=2, plan='pro', signup 2026-03-05, no last activity, region null.
    static func features(_ feature: Feature) -> FeatureValue {
        switch feature {
        case .spend(days: 30): return .money(cents: 60_000)
        case .spend: return .money(cents: 0)
        case .accounts: return .number(2)
        case .attribute("plan"): return .string("pro")
        case .attribute("age"): return .number(31)
        case .attribute("vip"): return .bool(true)
        case .signupDate: return .date(DayCalendar.dayNumber(isoDate: "2026-03-05")!)
        case .hoursSinceSignup: return .number(30)
        case .activitiesSinceSignup: return .number(0)
        default: return .null
        }
    }

    @Test(arguments: [
        ("spend(30d) > 500", RuleValue.bool(true)),
        ("SPEND(30d) > 500 AND accounts >= 2", .bool(true)),
        ("spend(7d) > 500 or accounts = 2", .bool(true)),
        ("not accounts = 2", .bool(false)),
        ("accounts != 2", .bool(false)),
        ("accounts <> 3", .bool(true)),
        ("signup_date >= date('2026-03-01')", .bool(true)),
        ("signup_date < date('2026-03-01')", .bool(false)),
        ("attr.plan in ('pro', 'team')", .bool(true)),
        ("attr.plan not in ('pro', 'team')", .bool(false)),
        ("accounts between 1 and 2", .bool(true)),
        ("accounts not between 3 and 4", .bool(true)),
        ("spend(30d) / accounts = 300", .bool(true)),
        ("spend(30d) - 100 * 2 = 400", .bool(true)),
        ("-accounts < 0", .bool(true)),
        ("(accounts + 1) * 2 = 6", .bool(true)),
        ("hours_since_signup >= 24 and activities_since_signup = 0", .bool(true)),
        ("attr.vip", .bool(true)),
        ("attr.vip = true", .bool(true)),
        // Null behaviour: comparisons with null are null; Kleene and/or; is [not] null.
        ("attr.region = 'eu'", .null),
        ("attr.region != 'eu'", .null),
        ("not attr.region = 'eu'", .null),
        ("attr.region = 'eu' and accounts = 2", .null),
        ("attr.region = 'eu' and accounts = 3", .bool(false)),
        ("attr.region = 'eu' or accounts = 2", .bool(true)),
        ("attr.region = 'eu' or accounts = 3", .null),
        ("attr.region is null", .bool(true)),
        ("attr.plan is not null", .bool(true)),
        ("hours_since_last_activity > 1", .null),
        ("attr.region in ('eu', 'us')", .null),
        ("attr.plan in ('eu', null)", .null),
        ("attr.plan in ('pro', null)", .bool(true)),
        ("attr.region between 1 and 2", .null),
        ("null = null", .null),
        // Runtime mismatch on an attribute, and division by zero, are null.
        ("attr.plan > 3", .null),
        ("accounts / 0 > 1", .null),
        ("attr.age + 1 = 32", .bool(true)),
    ])
    func evaluates(rule: String, expected: RuleValue) throws {
        let expression = try RuleParser.parseRule(rule)
        #expect(expression.evaluate(Self.features) == expected, "\(rule)")
        // The compiled form ingest evaluates (each feature once, into slots) answers the same.
        let slots = FeatureSlots([expression])
        let values = slots.features.map { RuleValue(Self.features($0)) }
        #expect(values.withUnsafeBufferPointer { CompiledExpression(expression, slots: slots).evaluate(features: $0) } == expected, "\(rule) compiled")
    }

    /// Timestamps print as RFC 3339 with the shortest exact fraction, and read back to the instant.
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"),
        (1_790_000_000_123_000_000, "2026-09-21T14:13:20.123Z"),
        (1_790_000_000_000_123_000, "2026-09-21T14:13:20.000123Z"),
        (1_790_000_000_000_000_007, "2026-09-21T14:13:20.000000007Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (4_102_444_800_000_000_000, "2100-01-01T00:00:00Z"),
    ])
    func formatsInstants(nanoseconds: Int64, text: String) throws {
        #expect(RFC3339.format(Instant(nanoseconds: nanoseconds)) == text)
        #expect(try RFC3339.parse(text).get() == Instant(nanoseconds: nanoseconds))
    }

    @Test(arguments: [
        ("spend(30d) = 'x'", "cannot compare a number with a string", 0),
        ("spend > 5", "spend needs a window, like spend(30d)", 0),
        ("spend(0d) > 5", "a window must be a whole number of days", 6),
        ("spendy(30d) > 5", "unknown feature 'spendy'", 0),
        ("accounts > ", "expected a value, feature or '('", 11),
        ("accounts > 1 1", "unexpected number 1.0", 13),
        ("(accounts > 1", "expected ')'", 13),
        ("accounts + 1", "a rule must be true or false", 0),
        ("signup_date > 5", "cannot compare a date with a number", 0),
        ("date('2026-02-30') > signup_date", "is not a date", 5),
        ("'unterminated", "unterminated string", 0),
        ("accounts # 2", "unexpected character '#'", 9),
        ("accounts between 1 or 2", "expected 'and' in between", 19),
        ("not 'x'", "'not' needs true/false", 4),
        ("attr.plan is 3", "expected 'null' after 'is'", 13),
    ])
    func rejectsWithPosition(rule: String, message: String, column: Int) {
        do {
            _ = try RuleParser.parseRule(rule)
            Issue.record("accepted \(rule)")
        } catch {
            #expect(error.message.contains(message), "\(rule): \(error.message)")
            #expect(error.span.start == column, "\(rule): column \(error.span.start)")
        }
    }

    @Test func caretPointsAtTheProblem() throws {
        do {
            _ = try RuleParser.parseRule("accounts > 1 and spend(30d) = 'x'")
            Issue.record("accepted")
        } catch {
            #expect(error.caret(in: "accounts > 1 and spend(30d) = 'x'") == "accounts > 1 and spend(30d) = 'x'\n                 ^~~~~~~~~~~~~~~~")
        }
    }

    @Test func rendersSQLWithBoundParametersOnly() throws {
        let rule = try RuleParser.parseRule("spend(30d) > 500 and attr.plan in ('pro', 'x''); drop table users; --') and signup_date >= date('2026-03-01') and not accounts / 2 <> 1")
        let pg = SQLRenderer(dialect: .postgres).render(rule)
        #expect(pg.sql == #"(((("spend_30d" > $1) AND ("attr_plan" IN ($2, $3))) AND ("signup_date" >= $4)) AND (NOT ((CAST("accounts" AS DOUBLE PRECISION) / NULLIF($5, 0)) <> $6)))"#)
        #expect(pg.parameters == [.number(500), .string("pro"), .string("x'); drop table users; --"), .date(DayCalendar.dayNumber(isoDate: "2026-03-01")!), .number(2), .number(1)])
        #expect(!pg.sql.contains("drop"))
        #expect(SQLRenderer(dialect: .bigquery).render(rule).sql.hasPrefix("((((`spend_30d` > @p1)"))
        #expect(SQLRenderer(dialect: .sqlserver).render(try RuleParser.parseRule("attr.vip = true")).sql == "([attr_vip] = (1=1))")
        #expect(SQLRenderer(dialect: .sqlite).render(try RuleParser.parseRule("attr.region is not null")).sql == #"("attr_region" IS NOT NULL)"#)
    }

    @Test func collectsTheFeaturesARuleReads() throws {
        let rule = try RuleParser.parseRule("spend(30d) > 5 or hours_since_signup between 1 and activities(7d)")
        #expect(rule.features == [.spend(days: 30), .hoursSinceSignup, .activities(days: 7)])
    }
}
