import Foundation
import SegmenterCore
import SQLite

/// A warehouse in a local SQLite file: the embedded default (the demo's, and a handy target for
/// exports). `day` is an ISO date text; `signup_at` an ISO 8601 timestamp text.
public final class SQLiteWarehouse: Warehouse, WarehouseDialect, @unchecked Sendable {
    public let label: String
    private let connection: SQLiteConnection
    private let queries: WarehouseQueries
    /// SQLite connections are used by one thread at a time.
    private let lock = NSLock()

    public init(path: String, queries: WarehouseQueries) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw WarehouseError(step: "open", message: "no SQLite warehouse file at \(path)")
        }
        connection = try SQLiteConnection(path: path, readOnly: true)
        try connection.defineFunction("segmenter_md5", UserBucket.md5Hex)
        self.queries = queries
        label = "sqlite:\(path)"
    }

    /// Counted users, cents, activities and microseconds, summed in SQL (rounded per row first).
    private static let totals = """
        sum(CASE WHEN w.spend <> 0 OR w.activities <> 0 OR w.active_seconds <> 0 THEN 1 ELSE 0 END),
        CAST(sum(round(w.spend * 100)) AS INTEGER), sum(w.activities), CAST(sum(round(w.active_seconds * 1000000)) AS INTEGER)
        """
    private static let bucket = "substr(segmenter_md5(CAST(w.user_id AS TEXT)), 1, \(UserBucket.hexDigits))"

    typealias Query = (step: String, sql: String, values: [BoundValue])

    static func dayTotalsStatement(_ queries: WarehouseQueries, from: String, through: String) -> Query {
        ("per-day totals", """
            SELECT w.day, \(totals) FROM (\(queries.daily)) AS w WHERE w.day BETWEEN ?1 AND ?2 GROUP BY w.day
            """, [.text(from), .text(through)])
    }

    static func bucketTotalsStatement(_ queries: WarehouseQueries, day: String) -> Query {
        ("bucket totals of \(day)", """
            SELECT \(bucket), \(totals) FROM (\(queries.daily)) AS w WHERE w.day = ?1 GROUP BY 1
            """, [.text(day)])
    }

    static func userDaysStatement(_ queries: WarehouseQueries, day: String, buckets: [String]?) -> Query {
        let filter = buckets.map { " AND \(bucket) IN (\($0.indices.map { "?\($0 + 2)" }.joined(separator: ", ")))" } ?? ""
        return ("user rows of \(day)", """
            SELECT CAST(w.user_id AS TEXT), CAST(round(w.spend * 100) AS INTEGER), w.activities, CAST(round(w.active_seconds * 1000000) AS INTEGER)
            FROM (\(queries.daily)) AS w WHERE w.day = ?1\(filter)
            """, [.text(day)] + (buckets ?? []).map(BoundValue.text))
    }

    static func signupBucketsStatement(_ signups: String) -> Query {
        ("sign-up buckets", """
            SELECT s.seconds / 86400 - (s.seconds < 0 AND s.seconds % 86400 <> 0), count(*), sum(s.seconds)
            FROM (SELECT CAST(strftime('%s', w.signup_at) AS INTEGER) AS seconds FROM (\(signups)) AS w WHERE w.signup_at IS NOT NULL) AS s
            GROUP BY 1
            """, [])
    }

    static func signupsStatement(_ signups: String, bucket: Int64) -> Query {
        ("sign-ups of bucket \(bucket)", """
            SELECT CAST(w.user_id AS TEXT), CAST(strftime('%s', w.signup_at) AS INTEGER)
            FROM (\(signups)) AS w WHERE CAST(strftime('%s', w.signup_at) AS INTEGER) >= ?1 AND CAST(strftime('%s', w.signup_at) AS INTEGER) < ?2
            """, [.integer(bucket * 86_400), .integer((bucket + 1) * 86_400)])
    }

    /// A metric's value in millionths, rounded per row.
    private static let millionths = "CAST(round(w.value * 1000000) AS INTEGER)"

    static func metricDayTotalsStatement(_ metrics: String, from: String, through: String) -> Query {
        ("per-day metric totals", """
            SELECT w.day, CAST(w.metric AS TEXT), sum(CASE WHEN \(millionths) <> 0 THEN 1 ELSE 0 END), sum(\(millionths))
            FROM (\(metrics)) AS w WHERE w.day BETWEEN ?1 AND ?2 AND w.value IS NOT NULL GROUP BY w.day, w.metric
            """, [.text(from), .text(through)])
    }

    static func metricValuesStatement(_ metrics: String, day: String, names: [String]) -> Query {
        ("metric values of \(day)", """
            SELECT CAST(w.user_id AS TEXT), CAST(w.metric AS TEXT), \(millionths) FROM (\(metrics)) AS w
            WHERE w.day = ?1 AND w.metric IN (\(names.indices.map { "?\($0 + 2)" }.joined(separator: ", "))) AND \(millionths) <> 0
            """, [.text(day)] + names.map(BoundValue.text))
    }

    public var renderedStatements: [RenderedStatement] { Self.rendered(queries) }

    /// The statements a run sends, with example values (no connection needed).
    public static func rendered(_ queries: WarehouseQueries) -> [RenderedStatement] { renderedExamples(queries) }

    static func render(_ statement: Query) -> RenderedStatement {
        RenderedStatement(step: statement.step, sql: statement.sql,
                          parameters: statement.values.enumerated().map { "?\($0.offset + 1) = \($0.element.display)" })
    }

    public func dayTotals(from: String, through: String) async throws -> [String: DayTotals] {
        try rows(Self.dayTotalsStatement(queries, from: from, through: through)) { row, result in result[row.string(0) ?? ""] = Self.dayTotals(row) }
    }

    public func bucketTotals(on day: String) async throws -> [String: DayTotals] {
        try rows(Self.bucketTotalsStatement(queries, day: day)) { row, result in result[row.string(0) ?? ""] = Self.dayTotals(row) }
    }

    private static func dayTotals(_ row: Statement) -> DayTotals {
        DayTotals(users: row.int64(1), spendCents: row.int64(2), activities: row.int64(3), activeMicros: row.int64(4))
    }

    public func userDays(on day: String, buckets: [String]?) async throws -> [String: DayAggregate] {
        try rows(Self.userDaysStatement(queries, day: day, buckets: buckets)) { row, result in
            result[row.string(0) ?? ""] = DayAggregate(spendCents: row.int64(1), activities: row.int64(2), activeMicros: row.int64(3))
        }
    }

    public func signupBuckets() async throws -> [Int64: SignupBucket] {
        guard let signups = queries.signups else { return [:] }
        return try rows(Self.signupBucketsStatement(signups)) { row, result in
            result[row.int64(0)] = SignupBucket(users: row.int64(1), secondsSum: row.int64(2))
        }
    }

    public func signups(inBucket bucket: Int64) async throws -> [String: Int64] {
        guard let signups = queries.signups else { return [:] }
        return try rows(Self.signupsStatement(signups, bucket: bucket)) { row, result in
            result[row.string(0) ?? ""] = row.int64(1)
        }
    }

    public func metricDayTotals(from: String, through: String) async throws -> [String: [String: MetricDayTotals]] {
        guard let metrics = queries.metrics else { return [:] }
        return try rows(Self.metricDayTotalsStatement(metrics, from: from, through: through)) { row, result in
            result[row.string(0) ?? "", default: [:]][row.string(1) ?? ""] = MetricDayTotals(users: row.int64(2), millionths: row.int64(3))
        }
    }

    public func metricValues(on day: String, metrics names: [String]) async throws -> [String: [String: Int64]] {
        guard let metrics = queries.metrics, !names.isEmpty else { return [:] }
        return try rows(Self.metricValuesStatement(metrics, day: day, names: names)) { row, result in
            result[row.string(0) ?? "", default: [:]][row.string(1) ?? ""] = row.int64(2)
        }
    }

    public func shutdown() async {}

    private func rows<Result: ExpressibleByDictionaryLiteral>(_ rendered: Query, _ read: (Statement, inout Result) -> Void) throws -> Result {
        lock.lock()
        defer { lock.unlock() }
        var result: Result = [:]
        let step = rendered.step
        do {
            let statement = try connection.prepare(rendered.sql)
            for (index, value) in rendered.values.enumerated() {
                switch value {
                case let .text(text): statement.bind(Int32(index + 1), text)
                case let .integer(number): statement.bind(Int32(index + 1), number)
                }
            }
            while try statement.step() { read(statement, &result) }
        } catch let error as SQLiteError {
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6): a writer holds the file for now.
            throw WarehouseError(step: step, message: "\(error.message) (SQLite code \(error.code))", retryable: [5, 6].contains(error.code & 0xff))
        }
        return result
    }
}
