/// One metric's totals over all users on one local day (`metrics_sql`, SPEC §4b): users with a
/// non-zero value, and the sum of their values in millionths, so counts, sums and fractional
/// warehouse values compare exactly as integers.
public struct MetricDayTotals: Equatable, Sendable {
    public var users: Int64 = 0
    public var millionths: Int64 = 0

    public init(users: Int64 = 0, millionths: Int64 = 0) {
        self.users = users
        self.millionths = millionths
    }

    public static func + (lhs: MetricDayTotals, rhs: MetricDayTotals) -> MetricDayTotals {
        MetricDayTotals(users: lhs.users + rhs.users, millionths: MetricCatalog.saturating(lhs.millionths, rhs.millionths))
    }
}

/// The metric levels of the diff (per day and metric, then the users of a differing one), pure.
///
/// What a per-day value means locally: a count's events, a sum's total, a `count_distinct`'s
/// distinct values that day, a sequence's instances counted on their `first` event's day once
/// settled. Counts and sums take the warehouse's value (SPEC §4b). `count_distinct` and
/// sequences are compared and reported, never corrected: a window's distinct count is not the
/// sum of its days' counts (the warehouse gives a count, not the values), and a sequence's
/// instance depends on events of later days, so a day's number cannot be set on its own.
public enum MetricReconciliation {
    /// Millionths per unit of the stored day total (sums are stored in millionths).
    public static func millionthsPerUnit(_ shape: MetricShape) -> Int64 {
        if case .sum = shape { 1 } else { 1_000_000 }
    }

    /// Whether a differing user-day of this metric takes the warehouse's value.
    public static func isCorrected(_ shape: MetricShape) -> Bool {
        switch shape {
        case .count, .sum: true
        case .countDistinct, .sequence: false
        }
    }

    /// The stored day total for a warehouse value (a count's fraction rounds half-even).
    public static func storedTotal(millionths: Int64, shape: MetricShape) -> Int64 {
        let unit = millionthsPerUnit(shape)
        guard unit > 1 else { return millionths }
        return Int64((Double(millionths) / Double(unit)).rounded(.toNearestOrEven))
    }

    /// The (day, metric) pairs whose totals differ: one missing on a side counts as zeros.
    /// - Returns: per differing day, its differing metrics' names, sorted.
    public static func differing(local: [DayNumber: [String: MetricDayTotals]], warehouse: [DayNumber: [String: MetricDayTotals]],
                                 in days: ClosedRange<DayNumber>, metrics: some Sequence<String>) -> [DayNumber: [String]] {
        var result: [DayNumber: [String]] = [:]
        for day in days {
            for name in metrics where (local[day]?[name] ?? MetricDayTotals()) != (warehouse[day]?[name] ?? MetricDayTotals()) {
                result[day, default: []].append(name)
            }
        }
        return result.mapValues { $0.sorted() }
    }

    /// Users whose value (millionths) differs, with the warehouse's (zero where it has no row).
    public static func differingUsers(local: [String: Int64], warehouse: [String: Int64]) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for (user, truth) in warehouse where (local[user] ?? 0) != truth { result[user] = truth }
        for (user, mine) in local where warehouse[user] == nil && mine != 0 { result[user] = 0 }
        return result
    }
}

/// The metric part of a reconciliation run's report (nil when no `metrics_sql` is configured).
public struct MetricReconciliationSummary: Equatable, Sendable, Codable {
    /// (day, metric) pairs compared, and those that differed as `2026-01-31 logins`.
    public var dayMetricsCompared = 0
    public var dayMetricsDiffering: [String] = []
    /// User-day values compared (in differing pairs) and those that took the warehouse's value.
    public var userValuesCompared = 0
    public var userValuesCorrected = 0
    /// Per `count_distinct` or sequence metric: user-days that differ but are only reported.
    public var differingNotCorrected: [String: Int] = [:]
    /// Metric names the warehouse returned that no definition has (their rows are ignored).
    public var unknownMetrics: [String] = []
    /// Defined metrics without a row in the compared days: not compared (metrics_sql does not
    /// cover them).
    public var notInWarehouse: [String] = []
    /// Absolute drift of the corrected values, in millionths, and the warehouse's total of the
    /// corrected metrics over the compared days.
    public var drift = Drift()

    public init() {}

    public var summary: String {
        var text = "metrics: \(dayMetricsCompared) day-metrics compared, \(dayMetricsDiffering.count) differing, "
            + "\(userValuesCorrected) of \(userValuesCompared) user values corrected"
        if !differingNotCorrected.isEmpty {
            text += ", differing but not corrected: " + differingNotCorrected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        if !unknownMetrics.isEmpty { text += ", unknown metrics ignored: \(unknownMetrics.joined(separator: ", "))" }
        if !notInWarehouse.isEmpty { text += ", not in metrics_sql: \(notInWarehouse.joined(separator: ", "))" }
        return text
    }
}

/// One user-day of one metric set to the warehouse's value (a count, or a sum in millionths).
public struct MetricDayCorrection: Equatable, Sendable {
    public let day: DayNumber
    public let key: MetricKey
    public let total: Int64

    public init(day: DayNumber, key: MetricKey, total: Int64) {
        self.day = day
        self.key = key
        self.total = total
    }
}
