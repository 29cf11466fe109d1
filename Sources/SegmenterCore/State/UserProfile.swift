/// The (`ts`, `event_id`) of the event that set a value; the greatest one wins (SPEC §2).
public struct Version: Comparable, Hashable, Sendable {
    public var ts: Instant
    public var eventID: String

    public init(ts: Instant, eventID: String) {
        self.ts = ts
        self.eventID = eventID
    }

    public static func < (lhs: Version, rhs: Version) -> Bool {
        lhs.ts != rhs.ts ? lhs.ts < rhs.ts : lhs.eventID < rhs.eventID
    }
}

/// An attribute's current value; a nil value is a tombstone, kept so an older event that
/// arrives later cannot bring the attribute back.
public struct AttributeEntry: Equatable, Sendable {
    public var value: AttributeValue?
    public var version: Version

    public init(value: AttributeValue?, version: Version) {
        self.value = value
        self.version = version
    }
}

/// An account's state as of the greatest (`ts`, `event_id`) seen for it.
public struct AccountEntry: Equatable, Sendable {
    public var open: Bool
    public var version: Version

    public init(open: Bool, version: Version) {
        self.open = open
        self.version = version
    }
}

/// Everything about a user that is not a per-day sum.
///
/// Only lifetime totals and latest-wins values live here, so the row stays small; the
/// windowed sums come from `DayAggregate` rows.
public struct UserProfile: Equatable, Sendable {
    public var signupAt: Instant?
    public var lastActivityAt: Instant?
    public var lifetimeSpendCents: Int64 = 0
    public var lifetimeActivities: Int64 = 0
    public var lifetimeActiveMicros: Int64 = 0
    /// Timestamps of activities earlier than `signupAt` (all of them while no signup is known),
    /// sorted. `signupAt` only moves earlier, so an activity at or after it counts for good;
    /// only these few need remembering to keep `activities_since_signup` exact in any order.
    public var activityBeforeSignup: [Instant] = []
    public var attributes: [String: AttributeEntry] = [:]
    public var accounts: [String: AccountEntry] = [:]
    /// The user's metrics (SPEC §4b), with their days loaded like the batch's day sums.
    public var metrics = UserMetrics()

    public init() {}

    /// Number of accounts whose latest event is `account_opened`.
    public var openAccounts: Int { accounts.values.reduce(0) { $0 + ($1.open ? 1 : 0) } }

    /// `activities_since_signup`: null until a signup is seen (SPEC §8).
    public var activitiesSinceSignup: Int64? {
        signupAt == nil ? nil : lifetimeActivities - Int64(activityBeforeSignup.count)
    }
}

/// One user's sums for one local calendar day.
public struct DayAggregate: Equatable, Sendable {
    public var spendCents: Int64
    public var activities: Int64
    public var activeMicros: Int64

    public init(spendCents: Int64 = 0, activities: Int64 = 0, activeMicros: Int64 = 0) {
        self.spendCents = spendCents
        self.activities = activities
        self.activeMicros = activeMicros
    }

    public static func += (lhs: inout DayAggregate, rhs: DayAggregate) {
        lhs.spendCents += rhs.spendCents
        lhs.activities += rhs.activities
        lhs.activeMicros += rhs.activeMicros
    }
}
