import Foundation
import SegmenterCore
import SQLServerIO

/// Microsoft SQL Server over TDS (FreeTDS's db-lib). Every value is a typed parameter of
/// `sp_executesql`; the user's queries are sub-queries. `day` may be a `date` or text a cast
/// turns into one, `signup_at` a `datetime2` in UTC. The SQL keeps to what SQL Server 2012 and
/// later accept (no `DATEDIFF_BIG`, no `STRING_SPLIT`).
public final class SQLServerWarehouse: Warehouse, WarehouseDialect, @unchecked Sendable {
    public let label: String
    private let settings: TDSSettings
    private let queries: WarehouseQueries
    /// db-lib blocks: its calls run here, one at a time, off the cooperative pool.
    private let queue = DispatchQueue(label: "segmenter.warehouse.sqlserver")
    /// Opened on first use, kept for the run (guarded by `queue`).
    private var connection: TDSConnection?
    /// Statements sent, by step name without its day (`bucket totals of`, …), guarded by `queue`.
    private var sent: [String: Int] = [:]

    /// How many statements of each kind were sent (`bucket totals of`, `user rows of`, …).
    public var statementsSent: [String: Int] { queue.sync { sent } }

    public init(settings: TDSSettings, queries: WarehouseQueries) {
        self.settings = settings
        self.queries = queries
        label = "sqlserver://\(settings.user)@\(settings.host):\(settings.port)/\(settings.database ?? "")"
    }

    public var renderedStatements: [RenderedStatement] { Self.rendered(queries) }

    /// The statements a run sends, with example values (no connection needed).
    public static func rendered(_ queries: WarehouseQueries) -> [RenderedStatement] { renderedExamples(queries) }

    /// As sp_executesql receives them: the statement, then each parameter declared and bound.
    static func render(_ statement: Statement) -> RenderedStatement {
        RenderedStatement(step: statement.step, sql: statement.sql,
                          parameters: statement.parameters.map { "\($0.name) \($0.value.declaredType) = \($0.value.display)" })
    }

    typealias Statement = (step: String, sql: String, parameters: [(name: String, value: TDSParameter)])

    /// Counted users, cents, activities and microseconds, summed in SQL (rounded per row first).
    private static func totals(_ w: String) -> String {
        """
        CAST(COALESCE(SUM(CASE WHEN \(w).spend <> 0 OR \(w).activities <> 0 OR \(w).active_seconds <> 0 THEN 1 ELSE 0 END), 0) AS BIGINT),
        CAST(COALESCE(SUM(ROUND(CAST(\(w).spend AS DECIMAL(38, 6)) * 100, 0)), 0) AS BIGINT),
        CAST(COALESCE(SUM(CAST(\(w).activities AS BIGINT)), 0) AS BIGINT),
        CAST(COALESCE(SUM(ROUND(CAST(\(w).active_seconds AS DECIMAL(38, 6)) * 1000000, 0)), 0) AS BIGINT)
        """
    }
    /// The first three hex digits of the MD5 of the id's bytes (VARCHAR: the bytes
    /// PostgreSQL's `md5` hashes for ASCII ids).
    static let bucket = "LOWER(SUBSTRING(CONVERT(VARCHAR(32), HASHBYTES('MD5', CAST(w.user_id AS VARCHAR(4000))), 2), 1, \(UserBucket.hexDigits)))"
    /// Seconds since the epoch without `DATEDIFF_BIG` (whole days, then the seconds into the day).
    private static let epochSeconds = """
        CAST(DATEDIFF(DAY, '1970-01-01', CAST(w.signup_at AS DATETIME2)) AS BIGINT) * 86400
        + DATEDIFF(SECOND, CAST(CAST(w.signup_at AS DATE) AS DATETIME2), CAST(w.signup_at AS DATETIME2))
        """

    static func dayTotalsStatement(_ queries: WarehouseQueries, from: String, through: String) -> Statement {
        ("per-day totals", """
            SELECT CONVERT(CHAR(10), CAST(w.day AS DATE), 23), \(totals("w"))
            FROM (\(queries.daily)) AS w WHERE CAST(w.day AS DATE) BETWEEN CAST(@from AS DATE) AND CAST(@through AS DATE)
            GROUP BY CAST(w.day AS DATE)
            """, [("@from", .text(from)), ("@through", .text(through))])
    }

    static func bucketTotalsStatement(_ queries: WarehouseQueries, day: String) -> Statement {
        ("bucket totals of \(day)", """
            SELECT b.bucket, \(totals("b")) FROM (
              SELECT \(bucket) AS bucket, w.spend, w.activities, w.active_seconds
              FROM (\(queries.daily)) AS w WHERE CAST(w.day AS DATE) = CAST(@day AS DATE)) AS b
            GROUP BY b.bucket
            """, [("@day", .text(day))])
    }

    /// `buckets` travel as one parameter, `,abc,def,`, matched with `CHARINDEX`: one bound
    /// value however many buckets differ.
    static func userDaysStatement(_ queries: WarehouseQueries, day: String, buckets: [String]?) -> Statement {
        let filter = buckets == nil ? "" : " AND CHARINDEX(',' + \(bucket) + ',', @buckets) > 0"
        var parameters: [(name: String, value: TDSParameter)] = [("@day", .text(day))]
        if let buckets { parameters.append(("@buckets", .text("," + buckets.joined(separator: ",") + ","))) }
        return ("user rows of \(day)", """
            SELECT CAST(w.user_id AS NVARCHAR(4000)), CAST(COALESCE(ROUND(CAST(w.spend AS DECIMAL(38, 6)) * 100, 0), 0) AS BIGINT),
                   CAST(COALESCE(w.activities, 0) AS BIGINT), CAST(COALESCE(ROUND(CAST(w.active_seconds AS DECIMAL(38, 6)) * 1000000, 0), 0) AS BIGINT)
            FROM (\(queries.daily)) AS w WHERE CAST(w.day AS DATE) = CAST(@day AS DATE)\(filter)
            """, parameters)
    }

    static func signupBucketsStatement(_ signups: String) -> Statement {
        ("sign-up buckets", """
            SELECT s.bucket, CAST(COUNT(*) AS BIGINT), CAST(SUM(s.seconds) AS BIGINT) FROM (
              SELECT CAST(DATEDIFF(DAY, '1970-01-01', CAST(w.signup_at AS DATETIME2)) AS BIGINT) AS bucket, \(epochSeconds) AS seconds
              FROM (\(signups)) AS w WHERE w.signup_at IS NOT NULL) AS s
            GROUP BY s.bucket
            """, [])
    }

    static func signupsStatement(_ signups: String, bucket: Int64) -> Statement {
        ("sign-ups of bucket \(bucket)", """
            SELECT CAST(w.user_id AS NVARCHAR(4000)), \(epochSeconds)
            FROM (\(signups)) AS w WHERE w.signup_at IS NOT NULL AND CAST(DATEDIFF(DAY, '1970-01-01', CAST(w.signup_at AS DATETIME2)) AS BIGINT) = @bucket
            """, [("@bucket", .integer(bucket))])
    }

    /// A metric's value in millionths, rounded per row.
    private static let millionths = "ROUND(CAST(w.value AS DECIMAL(38, 6)) * 1000000, 0)"

    static func metricDayTotalsStatement(_ metrics: String, from: String, through: String) -> Statement {
        ("per-day metric totals", """
            SELECT CONVERT(CHAR(10), CAST(w.day AS DATE), 23), CAST(w.metric AS NVARCHAR(64)),
                   CAST(COALESCE(SUM(CASE WHEN \(millionths) <> 0 THEN 1 ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM(\(millionths)), 0) AS BIGINT)
            FROM (\(metrics)) AS w WHERE CAST(w.day AS DATE) BETWEEN CAST(@from AS DATE) AND CAST(@through AS DATE) AND w.value IS NOT NULL
            GROUP BY CAST(w.day AS DATE), CAST(w.metric AS NVARCHAR(64))
            """, [("@from", .text(from)), ("@through", .text(through))])
    }

    /// `names` travel as one parameter, `,logins,revenue,` (names are `[a-z0-9_]`), matched with `CHARINDEX`.
    static func metricValuesStatement(_ metrics: String, day: String, names: [String]) -> Statement {
        ("metric values of \(day)", """
            SELECT CAST(w.user_id AS NVARCHAR(4000)), CAST(w.metric AS NVARCHAR(64)), CAST(\(millionths) AS BIGINT) FROM (\(metrics)) AS w
            WHERE CAST(w.day AS DATE) = CAST(@day AS DATE) AND CHARINDEX(',' + CAST(w.metric AS NVARCHAR(64)) + ',', @metrics) > 0 AND \(millionths) <> 0
            """, [("@day", .text(day)), ("@metrics", .text("," + names.joined(separator: ",") + ","))])
    }

    public func metricDayTotals(from: String, through: String) async throws -> [String: [String: MetricDayTotals]] {
        guard let metrics = queries.metrics else { return [:] }
        return try await rows(Self.metricDayTotalsStatement(metrics, from: from, through: through)) { row, result in
            result[try row.text(0), default: [:]][try row.text(1)] = MetricDayTotals(users: try row.integer(2), millionths: try row.integer(3))
        }
    }

    public func metricValues(on day: String, metrics names: [String]) async throws -> [String: [String: Int64]] {
        guard let metrics = queries.metrics, !names.isEmpty else { return [:] }
        return try await rows(Self.metricValuesStatement(metrics, day: day, names: names)) { row, result in
            result[try row.text(0), default: [:]][try row.text(1)] = try row.integer(2)
        }
    }

    public func dayTotals(from: String, through: String) async throws -> [String: DayTotals] {
        try await rows(Self.dayTotalsStatement(queries, from: from, through: through)) { row, result in
            result[try row.text(0)] = try row.dayTotals(from: 1)
        }
    }

    public func bucketTotals(on day: String) async throws -> [String: DayTotals] {
        do {
            return try await rows(Self.bucketTotalsStatement(queries, day: day)) { row, result in
                result[try row.text(0)] = try row.dayTotals(from: 1)
            }
        } catch let error as WarehouseError where error.message.contains("HASHBYTES") {
            throw BucketsUnavailable(reason: "the server cannot compute HASHBYTES('MD5', …)")
        }
    }

    public func userDays(on day: String, buckets: [String]?) async throws -> [String: DayAggregate] {
        // An NVARCHAR parameter holds 4000 characters: at most 900 buckets (",abc") per query.
        let chunks: [[String]?] = buckets.map { list in stride(from: 0, to: list.count, by: 900).map { Array(list[$0..<min($0 + 900, list.count)]) } } ?? [nil]
        var result: [String: DayAggregate] = [:]
        for chunk in chunks {
            result.merge(try await rows(Self.userDaysStatement(queries, day: day, buckets: chunk)) { row, result in
                result[try row.text(0)] = DayAggregate(spendCents: try row.integer(1), activities: try row.integer(2), activeMicros: try row.integer(3))
            }) { $1 }
        }
        return result
    }

    public func signupBuckets() async throws -> [Int64: SignupBucket] {
        guard let signups = queries.signups else { return [:] }
        return try await rows(Self.signupBucketsStatement(signups)) { row, result in
            result[try row.integer(0)] = SignupBucket(users: try row.integer(1), secondsSum: try row.integer(2))
        }
    }

    public func signups(inBucket bucket: Int64) async throws -> [String: Int64] {
        guard let signups = queries.signups else { return [:] }
        return try await rows(Self.signupsStatement(signups, bucket: bucket)) { row, result in
            result[try row.text(0)] = try row.integer(1)
        }
    }

    public func shutdown() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            queue.async {
                self.connection = nil
                done.resume()
            }
        }
    }

    /// Runs one statement on the queue and folds its rows; errors name the step and carry
    /// the server's message and number.
    private func rows<Result: ExpressibleByDictionaryLiteral & Sendable>(
        _ statement: Statement, _ read: @escaping @Sendable (Row, inout Result) throws -> Void
    ) async throws -> Result {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Result, Error>) in
            queue.async {
                self.sent[statement.step.split(separator: " ").prefix(3).joined(separator: " "), default: 0] += 1
                do {
                    let connection = try self.connection ?? TDSConnection(settings: self.settings)
                    self.connection = connection
                    var result: Result = [:]
                    try connection.query(statement.sql, parameters: statement.parameters) { try read(Row(values: $0), &result) }
                    done.resume(returning: result)
                } catch let error as TDSError {
                    // A broken session is not reused.
                    if error.cause != .query && error.cause != .unknownObject { self.connection = nil }
                    done.resume(throwing: WarehouseError(step: statement.step, message: error.description,
                                                         retryable: [.unreachable, .timeout].contains(error.cause)))
                } catch {
                    done.resume(throwing: WarehouseError(step: statement.step, message: String(describing: error), retryable: true))
                }
            }
        }
    }

    /// One result row, its columns as text.
    struct Row {
        let values: [String?]

        func text(_ index: Int) throws -> String {
            guard index < values.count, let value = values[index] else { throw WarehouseError(step: "reading", message: "column \(index + 1) is NULL") }
            return value
        }

        func integer(_ index: Int) throws -> Int64 {
            let text = try text(index)
            guard let value = Int64(text) else { throw WarehouseError(step: "reading", message: "column \(index + 1) is not an integer: \(text)") }
            return value
        }

        func dayTotals(from index: Int) throws -> DayTotals {
            DayTotals(users: try integer(index), spendCents: try integer(index + 1), activities: try integer(index + 2), activeMicros: try integer(index + 3))
        }
    }
}
