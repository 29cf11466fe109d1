/// A value `count_distinct` tells apart: by type and value (`1` = `1.0`; `'1'`, `1` and `true`
/// differ, SPEC §4b).
public enum DistinctValue: Hashable, Sendable, Comparable {
    case number(Double)
    case string(String)
    case bool(Bool)
    case date(DayNumber)

    init?(_ value: RuleValue) {
        switch value {
        case .null: return nil
        case let .number(n): self = .number(n == 0 ? 0 : n)  // -0 is 0
        case let .string(s): self = .string(s)
        case let .bool(b): self = .bool(b)
        case let .date(d): self = .date(d)
        }
    }

    public var json: String {
        switch self {
        case let .number(n): JSONText.number(n)
        case let .string(s): JSONText.quote(s)
        case let .bool(b): b ? "true" : "false"
        case let .date(d): JSONText.quote(DayCalendar.isoDate(d))
        }
    }

    private var rank: Int {
        switch self {
        case .number: 0
        case .string: 1
        case .bool: 2
        case .date: 3
        }
    }

    public static func < (a: DistinctValue, b: DistinctValue) -> Bool {
        switch (a, b) {
        case let (.number(x), .number(y)): x < y
        case let (.string(x), .string(y)): x < y
        case let (.bool(x), .bool(y)): !x && y
        case let (.date(x), .date(y)): x < y
        default: a.rank < b.rank
        }
    }
}

/// A sequence's instance whose outcome a late event may still change: opened by a `first`
/// event at `first`, `completed` once a `then` event falls in `(first, first + within]`.
public struct SequenceInstance: Equatable, Sendable {
    public var first: Instant
    public var completed: Bool

    public init(first: Instant, completed: Bool) {
        self.first = first
        self.completed = completed
    }

    /// Whether it counts at `now`: completed (`then`), or with `abandoned` (`then_not`) not
    /// completed and `now` strictly after `first + within`.
    func counts(now: Instant, withinNanos: Int64, abandoned: Bool) -> Bool {
        abandoned ? !completed && now.nanoseconds > first.nanoseconds &+ withinNanos : completed
    }
}

/// One user's state of one metric that is not per day.
public struct MetricTotals: Equatable, Sendable {
    /// Over all days: the count, the sum in millionths, or a sequence's settled count.
    public var lifetime: Int64 = 0
    /// The earliest and latest matching event (a sequence: the `first` of a settled counted instance).
    public var firstAt: Instant?
    public var lastAt: Instant?
    /// `count_distinct`: every value ever seen.
    public var distinct: Set<DistinctValue> = []
    /// A sequence's instances whose outcome a late event can still change, by `first`.
    public var open: [SequenceInstance] = []
    /// A sequence's `then` events a late `first` can still pair with, sorted.
    public var thens: [Instant] = []

    public init() {}

    mutating func noteTime(_ ts: Instant) {
        if firstAt == nil || ts < firstAt! { firstAt = ts }
        if lastAt == nil || ts > lastAt! { lastAt = ts }
    }
}

/// One user's value of one metric on one local day.
public struct MetricDay: Equatable, Sendable {
    /// The count, the sum in millionths, or a sequence's settled count (its open instances are
    /// counted from `MetricTotals.open`).
    public var total: Int64 = 0
    /// `count_distinct`: the values seen that day.
    public var values: Set<DistinctValue> = []

    public init(total: Int64 = 0, values: Set<DistinctValue> = []) {
        self.total = total
        self.values = values
    }

    public var isEmpty: Bool { total == 0 && values.isEmpty }
}

/// A user's metrics (SPEC §4b): per metric, its totals, and the days loaded (from the first day
/// any window reaches, like `UserSlice.days`; older days are only written to).
///
/// One optional reference, nil without metrics: every user slice carries it, and the batch step
/// copies and moves slices (measured: two dictionaries here made the slice too large to move
/// inline, +11 % instructions per event with no metric defined).
public struct UserMetrics: Equatable, Sendable {
    private final class Storage: @unchecked Sendable {
        var totals: [MetricKey: MetricTotals] = [:]
        var days: [MetricKey: [DayNumber: MetricDay]] = [:]

        func copy() -> Storage {
            let copy = Storage()
            copy.totals = totals
            copy.days = days
            return copy
        }
    }

    private var storage: Storage?

    public init() {}

    public var totals: [MetricKey: MetricTotals] {
        get { storage?.totals ?? [:] }
        _modify {
            makeUnique()
            yield &storage!.totals
        }
        set {
            makeUnique()
            storage!.totals = newValue
        }
    }

    public var days: [MetricKey: [DayNumber: MetricDay]] {
        get { storage?.days ?? [:] }
        _modify {
            makeUnique()
            yield &storage!.days
        }
        set {
            makeUnique()
            storage!.days = newValue
        }
    }

    private mutating func makeUnique() {
        if storage == nil {
            storage = Storage()
        } else if !isKnownUniquelyReferenced(&storage!) {
            storage = storage!.copy()
        }
    }

    public static func == (a: UserMetrics, b: UserMetrics) -> Bool { a.totals == b.totals && a.days == b.days }

    public var isEmpty: Bool { storage.map { $0.totals.isEmpty && $0.days.isEmpty } ?? true }

    /// Drops loaded days before `firstDay` (no window reaches them).
    mutating func forgetDays(before firstDay: DayNumber) {
        for (key, byDay) in days where byDay.keys.contains(where: { $0 < firstDay }) {
            days[key] = byDay.filter { $0.key >= firstDay }
        }
    }
}

/// What applying events or settling instances did to one user-day of one metric, for the store
/// to add to its row (totals add; values are a set, so inserting one twice changes nothing).
public struct MetricDayWrite: Equatable, Sendable {
    public let userID: String
    public let day: DayNumber
    public let key: MetricKey
    public var delta: Int64
    public var values: [DistinctValue]

    public init(userID: String, day: DayNumber, key: MetricKey, delta: Int64, values: [DistinctValue] = []) {
        self.userID = userID
        self.day = day
        self.key = key
        self.delta = delta
        self.values = values
    }
}
