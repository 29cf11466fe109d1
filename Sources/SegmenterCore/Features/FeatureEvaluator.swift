/// Computes SPEC §3 features of one user from their state and `now`. Pure.
///
/// A class so that rule evaluation, which asks for features through a closure, shares one
/// instance instead of copying the profile and its dictionaries on every call. Window sums are
/// memoised (rules and KPIs ask for the same few windows); use one instance on one thread.
public final class FeatureEvaluator {
    public let profile: UserProfile
    public let days: [DayNumber: DayAggregate]
    public let now: Instant
    public let today: DayNumber
    private let calendar: DayCalendar
    /// (n, sum over the n-day window), for the few windows asked so far.
    private var windows: [(Int, DayAggregate)] = []

    /// - Parameter days: the user's per-day sums; days outside every window may be absent.
    public init(profile: UserProfile, days: [DayNumber: DayAggregate], now: Instant, calendar: DayCalendar) {
        self.profile = profile
        self.days = days
        self.now = now
        self.today = calendar.day(of: now)
        self.calendar = calendar
    }

    public func value(of feature: Feature) -> FeatureValue {
        switch feature {
        case let .spend(n): return .money(cents: window(n).spendCents)
        case .lifetimeSpend: return .money(cents: profile.lifetimeSpendCents)
        case let .activities(n): return .number(Double(window(n).activities))
        case let .activeMinutes(n): return .number(minutes(window(n).activeMicros))
        case let .avgDailyMinutes(n): return .number(minutes(window(n).activeMicros) / Double(n))
        case let .activeDays(n):
            let first = today - DayNumber(n - 1)
            return .number(Double(days.reduce(0) { $0 + ($1.key >= first && $1.key <= today && $1.value.activities > 0 ? 1 : 0) }))
        case .accounts: return .number(Double(profile.openAccounts))
        case .signupDate:
            return signupDay.map(FeatureValue.date) ?? .null
        case .daysSinceSignup:
            return signupDay.map { .number(Double(today - $0)) } ?? .null
        case .hoursSinceSignup:
            return profile.signupAt.map { .number(now.hours(since: $0)) } ?? .null
        case .activitiesSinceSignup:
            return profile.activitiesSinceSignup.map { .number(Double($0)) } ?? .null
        case .hoursSinceLastActivity:
            return profile.lastActivityAt.map { .number(now.hours(since: $0)) } ?? .null
        case let .attribute(name):
            switch profile.attributes[name]?.value {
            case nil: return .null
            case let .string(s)?: return .string(s)
            case let .number(n)?: return .number(n)
            case let .bool(b)?: return .bool(b)
            }
        case let .metric(metric, window):
            return profile.metrics.value(of: metric, over: window, now: now, today: today, calendar: calendar)
        case let .hoursSinceLast(metric):
            return profile.metrics.hoursSince(metric, latest: true, now: now)
        case let .hoursSinceFirst(metric):
            return profile.metrics.hoursSince(metric, latest: false, now: now)
        case .event:
            return .null  // a user has no event fields; only metric filters read them
        }
    }

    private var signupDay: DayNumber? { profile.signupAt.map { calendar.day(of: $0) } }

    /// Sums over the days `today-(n-1) … today`.
    public func window(_ n: Int) -> DayAggregate {
        for (size, total) in windows where size == n { return total }
        let first = today - DayNumber(n - 1)
        var total = DayAggregate()
        for (day, aggregate) in days where day >= first && day <= today { total += aggregate }
        windows.append((n, total))
        return total
    }

    private func minutes(_ micros: Int64) -> Double { Double(micros) / 60_000_000 }
}
