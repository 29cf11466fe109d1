/// Sums over all users for one local day: what reconciliation compares before it fetches any
/// user row. `users` counts users with a non-zero value that day, so a row of zeros (a charge
/// and its refund) on one side and no row on the other do not look like drift.
public struct DayTotals: Equatable, Sendable {
    public var users: Int64 = 0
    public var spendCents: Int64 = 0
    public var activities: Int64 = 0
    public var activeMicros: Int64 = 0

    public init(users: Int64 = 0, spendCents: Int64 = 0, activities: Int64 = 0, activeMicros: Int64 = 0) {
        self.users = users
        self.spendCents = spendCents
        self.activities = activities
        self.activeMicros = activeMicros
    }

    public mutating func add(_ day: DayAggregate) {
        guard !day.isZero else { return }
        users += 1
        spendCents += day.spendCents
        activities += day.activities
        activeMicros += day.activeMicros
    }

    public static func + (lhs: DayTotals, rhs: DayTotals) -> DayTotals {
        DayTotals(users: lhs.users + rhs.users, spendCents: lhs.spendCents + rhs.spendCents,
                  activities: lhs.activities + rhs.activities, activeMicros: lhs.activeMicros + rhs.activeMicros)
    }
}

extension DayAggregate {
    public var isZero: Bool { spendCents == 0 && activities == 0 && activeMicros == 0 }

    public static func - (lhs: DayAggregate, rhs: DayAggregate) -> DayAggregate {
        DayAggregate(spendCents: lhs.spendCents - rhs.spendCents, activities: lhs.activities - rhs.activities,
                     activeMicros: lhs.activeMicros - rhs.activeMicros)
    }
}

/// The hierarchical diff, level by level. Pure: both sides are given.
public enum ReconciliationDiff {
    /// Days of `range` whose totals differ (a day missing on one side counts as all zeros).
    public static func differingDays(in range: ClosedRange<DayNumber>, local: [DayNumber: DayTotals],
                                     warehouse: [DayNumber: DayTotals]) -> [DayNumber] {
        range.filter { (local[$0] ?? DayTotals()) != (warehouse[$0] ?? DayTotals()) }
    }

    /// Users of one day whose local sums differ from the warehouse's, with the warehouse's value
    /// (all zeros where the warehouse has no row: warehouse wins).
    public static func corrections(local: [String: DayAggregate], warehouse: [String: DayAggregate]) -> [String: DayAggregate] {
        var result: [String: DayAggregate] = [:]
        for (user, truth) in warehouse where (local[user] ?? DayAggregate()) != truth { result[user] = truth }
        for (user, mine) in local where warehouse[user] == nil && !mine.isZero { result[user] = DayAggregate() }
        return result
    }
}

/// Absolute drift per feature, summed over corrected user-days, next to the warehouse's total
/// over the compared days so a relative figure can be given.
public struct Drift: Equatable, Sendable, Codable {
    public var absolute: Int64 = 0
    public var warehouseTotal: Int64 = 0
    public init() {}

    /// `absolute / |warehouseTotal|`; nil when the warehouse total is zero.
    public var relative: Double? { warehouseTotal == 0 ? nil : Double(absolute) / Double(abs(warehouseTotal)) }
}
