import SegmenterCore
import SQLite

/// Reconciliation's reads of metric state (`metrics_sql`, SPEC §4b), in stored units: a count's
/// events, a sum's millionths, a sequence's settled instances (from `user_metric_days`), or a
/// `count_distinct`'s values (how many rows `user_metric_values` holds for the user-day). The
/// reconciler scales them by each metric's shape.
extension PartitionReads {
    /// Per day and metric key: users with a non-zero value, and the sum of their values.
    public func metricDayTotals(in days: ClosedRange<DayNumber>) throws -> [DayNumber: [MetricKey: MetricDayTotals]] {
        let statement = try db.prepare("""
            SELECT day, metric, count(*), sum(total) FROM user_metric_days WHERE day BETWEEN ?1 AND ?2 AND total <> 0 GROUP BY day, metric
            UNION ALL
            SELECT day, metric, count(DISTINCT user_id), count(*) FROM user_metric_values WHERE day BETWEEN ?1 AND ?2 GROUP BY day, metric
            """)
        statement.bind(1, Int64(days.lowerBound))
        statement.bind(2, Int64(days.upperBound))
        var result: [DayNumber: [MetricKey: MetricDayTotals]] = [:]
        while try statement.step() {
            let totals = MetricDayTotals(users: statement.int64(2), millionths: statement.int64(3))
            result[DayNumber(statement.int64(0)), default: [:]][MetricKey(rawValue: statement.int64(1)), default: MetricDayTotals()] = totals
        }
        return result
    }

    /// One day's non-zero values of `keys`, per user and key.
    public func metricValues(on day: DayNumber, keys: [MetricKey]) throws -> [String: [MetricKey: Int64]] {
        // One bound JSON list of keys (integers), however many.
        let statement = try db.prepare("""
            SELECT user_id, metric, total FROM user_metric_days
            WHERE day = ?1 AND total <> 0 AND metric IN (SELECT value FROM json_each(?2))
            UNION ALL
            SELECT user_id, metric, count(*) FROM user_metric_values
            WHERE day = ?1 AND metric IN (SELECT value FROM json_each(?2)) GROUP BY user_id, metric
            """)
        statement.bind(1, Int64(day))
        statement.bind(2, "[" + keys.map { String($0.rawValue) }.joined(separator: ",") + "]")
        var result: [String: [MetricKey: Int64]] = [:]
        while try statement.step() {
            result[statement.string(0)!, default: [:]][MetricKey(rawValue: statement.int64(1))] = statement.int64(2)
        }
        return result
    }
}
