/// A feature of a user, as named in SPEC §3 and used by rules and KPIs.
public enum Feature: Hashable, Sendable, CustomStringConvertible {
    case spend(days: Int)
    case lifetimeSpend
    case activities(days: Int)
    case activeMinutes(days: Int)
    case avgDailyMinutes(days: Int)
    case activeDays(days: Int)
    case accounts
    case signupDate
    case daysSinceSignup
    case hoursSinceSignup
    case activitiesSinceSignup
    case hoursSinceLastActivity
    case attribute(String)
    /// A metric over the window's days, or over all of them (SPEC §4b).
    case metric(MetricRef, MetricWindow)
    /// Hours since the latest (`last`) or earliest matching event of a metric; for a sequence,
    /// since the `first` event of its latest or earliest counted instance.
    case hoursSinceLast(MetricRef)
    case hoursSinceFirst(MetricRef)
    /// A field of the event a metric's filter or expression reads; only there (never a user's).
    case event(EventField)

    /// The rule-language spelling: `spend(30d)`, `attr.region`.
    public var description: String {
        switch self {
        case let .spend(n): return "spend(\(n)d)"
        case .lifetimeSpend: return "lifetime_spend"
        case let .activities(n): return "activities(\(n)d)"
        case let .activeMinutes(n): return "active_minutes(\(n)d)"
        case let .avgDailyMinutes(n): return "avg_daily_minutes(\(n)d)"
        case let .activeDays(n): return "active_days(\(n)d)"
        case .accounts: return "accounts"
        case .signupDate: return "signup_date"
        case .daysSinceSignup: return "days_since_signup"
        case .hoursSinceSignup: return "hours_since_signup"
        case .activitiesSinceSignup: return "activities_since_signup"
        case .hoursSinceLastActivity: return "hours_since_last_activity"
        case let .attribute(name): return "attr.\(name)"
        case let .metric(metric, .days(n)): return "\(metric.name)(\(n)d)"
        case let .metric(metric, .lifetime): return "\(metric.name)(lifetime)"
        case let .hoursSinceLast(metric): return "hours_since_last(\(metric.name))"
        case let .hoursSinceFirst(metric): return "hours_since_first(\(metric.name))"
        case let .event(field): return field.description
        }
    }

    /// The window in days, for windowed features.
    public var windowDays: Int? {
        switch self {
        case let .spend(n), let .activities(n), let .activeMinutes(n), let .avgDailyMinutes(n), let .activeDays(n): return n
        case let .metric(_, .days(n)): return n
        default: return nil
        }
    }

    /// The features `export features` prints for the given windows.
    /// The metric the feature reads, if any.
    public var metric: MetricRef? {
        switch self {
        case let .metric(metric, _), let .hoursSinceLast(metric), let .hoursSinceFirst(metric): metric
        default: nil
        }
    }

    public static func standardSet(windows: [Int], attributeNames: [String]) -> [Feature] {
        var features: [Feature] = []
        for n in windows { features.append(.spend(days: n)) }
        features.append(.lifetimeSpend)
        for n in windows {
            features += [.activities(days: n), .activeMinutes(days: n), .avgDailyMinutes(days: n), .activeDays(days: n)]
        }
        features += [.accounts, .signupDate, .daysSinceSignup, .hoursSinceSignup, .activitiesSinceSignup, .hoursSinceLastActivity]
        features += attributeNames.sorted().map(Feature.attribute)
        return features
    }
}

/// A feature's value; SQL-like, so null is a value (SPEC §8).
public enum FeatureValue: Equatable, Sendable {
    case null
    case number(Double)
    /// Money stays exact until it is compared or printed.
    case money(cents: Int64)
    case string(String)
    case bool(Bool)
    case date(DayNumber)

    /// JSON text of the value (money as a number with two decimals, dates as `"2026-03-01"`).
    public var json: String {
        switch self {
        case .null: return "null"
        case let .number(n): return JSONText.number(n)
        case let .money(cents): return Money.format(cents: cents)
        case let .string(s): return JSONText.quote(s)
        case let .bool(b): return b ? "true" : "false"
        case let .date(d): return JSONText.quote(DayCalendar.isoDate(d))
        }
    }
}
