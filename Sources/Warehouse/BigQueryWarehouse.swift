import Foundation
import SegmenterCore

/// Google BigQuery through its REST API (`jobs.query` with named parameters, paged results).
/// `day` may be a DATE or text a cast turns into one, `signup_at` a TIMESTAMP. Sums come back
/// as INT64 or whole NUMERIC strings and are read exactly.
public final class BigQueryWarehouse: Warehouse, WarehouseDialect {
    public let label: String
    private let client: BigQueryClient
    private let queries: WarehouseQueries
    private let statistics = FetchStatistics()

    public init(settings: BigQuerySettings, queries: WarehouseQueries, clock: any ServiceClock = SystemClock()) throws {
        if case .none = settings.auth, settings.endpoint == BigQuerySettings.googleEndpoint {
            throw WarehouseError(step: "credentials", message: "BigQuery needs credentials_file: or access_token: (only an emulator's endpoint: may go without)")
        }
        client = try BigQueryClient(settings: settings, clock: clock)
        self.queries = queries
        label = "bigquery://\(settings.project)\(settings.dataset.map { "/\($0)" } ?? "")\(settings.endpoint == BigQuerySettings.googleEndpoint ? "" : " at \(settings.endpoint)")"
    }

    /// Rows and response bytes read so far, per level.
    public var fetched: [String: (rows: Int, bytes: Int)] { statistics.snapshot }
    public var bytesFetchedByLevel: [String: Int] { statistics.snapshot.mapValues(\.bytes) }

    typealias Statement = (step: String, level: String, sql: String, parameters: [String: BigQueryParameter])

    /// Counted users, cents, activities and microseconds, summed in SQL (rounded per row first).
    private static let totals = """
        COUNTIF(w.spend <> 0 OR w.activities <> 0 OR w.active_seconds <> 0),
        COALESCE(SUM(ROUND(CAST(w.spend AS NUMERIC) * 100)), 0), COALESCE(SUM(CAST(w.activities AS INT64)), 0),
        COALESCE(SUM(ROUND(CAST(w.active_seconds AS NUMERIC) * 1000000)), 0)
        """
    static let bucket = "SUBSTR(TO_HEX(MD5(CAST(w.user_id AS STRING))), 1, \(UserBucket.hexDigits))"

    static func dayTotalsStatement(_ queries: WarehouseQueries, from: String, through: String) -> Statement {
        ("per-day totals", "days", """
            SELECT CAST(w.day AS DATE) AS day, \(totals)
            FROM (\(queries.daily)) AS w WHERE CAST(w.day AS DATE) BETWEEN @from AND @through
            GROUP BY day
            """, ["from": .date(from), "through": .date(through)])
    }

    static func bucketTotalsStatement(_ queries: WarehouseQueries, day: String) -> Statement {
        ("bucket totals of \(day)", "buckets", """
            SELECT \(bucket) AS bucket, \(totals) FROM (\(queries.daily)) AS w WHERE CAST(w.day AS DATE) = @day GROUP BY bucket
            """, ["day": .date(day)])
    }

    static func userDaysStatement(_ queries: WarehouseQueries, day: String, buckets: [String]?) -> Statement {
        var parameters: [String: BigQueryParameter] = ["day": .date(day)]
        if let buckets { parameters["buckets"] = .strings(buckets) }
        return ("user rows of \(day)", "users", """
            SELECT CAST(w.user_id AS STRING), COALESCE(ROUND(CAST(w.spend AS NUMERIC) * 100), 0), COALESCE(CAST(w.activities AS INT64), 0),
                   COALESCE(ROUND(CAST(w.active_seconds AS NUMERIC) * 1000000), 0)
            FROM (\(queries.daily)) AS w WHERE CAST(w.day AS DATE) = @day\(buckets == nil ? "" : " AND \(bucket) IN UNNEST(@buckets)")
            """, parameters)
    }

    static func signupBucketsStatement(_ signups: String) -> Statement {
        ("sign-up buckets", "sign-up buckets", """
            SELECT CAST(FLOOR(s.seconds / 86400) AS INT64) AS bucket, COUNT(*), SUM(s.seconds)
            FROM (SELECT UNIX_SECONDS(CAST(w.signup_at AS TIMESTAMP)) AS seconds FROM (\(signups)) AS w WHERE w.signup_at IS NOT NULL) AS s
            GROUP BY bucket
            """, [:])
    }

    static func signupsStatement(_ signups: String, bucket: Int64) -> Statement {
        ("sign-ups of bucket \(bucket)", "sign-ups", """
            SELECT CAST(w.user_id AS STRING), CAST(w.signup_at AS TIMESTAMP)
            FROM (\(signups)) AS w WHERE UNIX_SECONDS(CAST(w.signup_at AS TIMESTAMP)) >= @from_second
              AND UNIX_SECONDS(CAST(w.signup_at AS TIMESTAMP)) < @to_second
            """, ["from_second": .int64(bucket * 86_400), "to_second": .int64((bucket + 1) * 86_400)])
    }

    /// A metric's value in millionths, rounded per row (NUMERIC: exact).
    private static let millionths = "ROUND(CAST(w.value AS NUMERIC) * 1000000)"

    static func metricDayTotalsStatement(_ metrics: String, from: String, through: String) -> Statement {
        ("per-day metric totals", "metric days", """
            SELECT CAST(w.day AS DATE) AS day, CAST(w.metric AS STRING) AS metric, COUNTIF(\(millionths) <> 0), COALESCE(SUM(\(millionths)), 0)
            FROM (\(metrics)) AS w WHERE CAST(w.day AS DATE) BETWEEN @from AND @through AND w.value IS NOT NULL
            GROUP BY day, metric
            """, ["from": .date(from), "through": .date(through)])
    }

    static func metricValuesStatement(_ metrics: String, day: String, names: [String]) -> Statement {
        ("metric values of \(day)", "metric values", """
            SELECT CAST(w.user_id AS STRING), CAST(w.metric AS STRING), \(millionths) FROM (\(metrics)) AS w
            WHERE CAST(w.day AS DATE) = @day AND CAST(w.metric AS STRING) IN UNNEST(@metrics) AND \(millionths) <> 0
            """, ["day": .date(day), "metrics": .strings(names)])
    }

    public var renderedStatements: [RenderedStatement] { Self.rendered(queries) }

    /// The statements a run sends, with example values (no connection needed).
    public static func rendered(_ queries: WarehouseQueries) -> [RenderedStatement] { renderedExamples(queries) }

    static func render(_ statement: Statement) -> RenderedStatement {
        RenderedStatement(step: statement.step, sql: statement.sql,
                          parameters: statement.parameters.sorted { $0.key < $1.key }.map { "@\($0.key) = \($0.value.display)" })
    }

    public func dayTotals(from: String, through: String) async throws -> [String: DayTotals] {
        try await rows(Self.dayTotalsStatement(queries, from: from, through: through)) { row, result in
            result[try BigQueryCell.date(try row.text(0))] = try row.dayTotals(from: 1)
        }
    }

    public func bucketTotals(on day: String) async throws -> [String: DayTotals] {
        try await rows(Self.bucketTotalsStatement(queries, day: day)) { row, result in
            result[try row.text(0)] = try row.dayTotals(from: 1)
        }
    }

    public func userDays(on day: String, buckets: [String]?) async throws -> [String: DayAggregate] {
        try await rows(Self.userDaysStatement(queries, day: day, buckets: buckets)) { row, result in
            result[try row.text(0)] = DayAggregate(spendCents: try row.integer(1), activities: try row.integer(2), activeMicros: try row.integer(3))
        }
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
            let micros = try BigQueryCell.timestampMicros(try row.text(1))
            result[try row.text(0)] = micros >= 0 ? micros / 1_000_000 : -((-micros + 999_999) / 1_000_000)
        }
    }

    public func metricDayTotals(from: String, through: String) async throws -> [String: [String: MetricDayTotals]] {
        guard let metrics = queries.metrics else { return [:] }
        return try await rows(Self.metricDayTotalsStatement(metrics, from: from, through: through)) { row, result in
            result[try BigQueryCell.date(try row.text(0)), default: [:]][try row.text(1)] = MetricDayTotals(users: try row.integer(2), millionths: try row.integer(3))
        }
    }

    public func metricValues(on day: String, metrics names: [String]) async throws -> [String: [String: Int64]] {
        guard let metrics = queries.metrics, !names.isEmpty else { return [:] }
        return try await rows(Self.metricValuesStatement(metrics, day: day, names: names)) { row, result in
            result[try row.text(0), default: [:]][try row.text(1)] = try row.integer(2)
        }
    }

    public func shutdown() async { await client.shutdown() }

    private func rows<Result: ExpressibleByDictionaryLiteral>(_ statement: Statement, _ read: (Row, inout Result) throws -> Void) async throws -> Result {
        let answer = try await client.query(statement.sql, parameters: statement.parameters, step: statement.step)
        statistics.add(level: statement.level, rows: answer.rows.count, bytes: answer.bytes)
        var result: Result = [:]
        do {
            for values in answer.rows { try read(Row(types: answer.types, values: values), &result) }
        } catch let error as BigQueryCell.BadValue {
            throw WarehouseError(step: statement.step, message: error.description)
        }
        return result
    }

    /// One result row: its cells as text, with the schema's types.
    struct Row {
        let types: [String]
        let values: [String?]

        func text(_ index: Int) throws -> String {
            guard index < values.count, let value = values[index] else { throw BigQueryCell.BadValue(type: "column \(index + 1)", text: "NULL") }
            return value
        }

        func integer(_ index: Int) throws -> Int64 {
            try BigQueryCell.integer(try text(index), type: index < types.count ? types[index] : "INT64")
        }

        func dayTotals(from index: Int) throws -> DayTotals {
            DayTotals(users: try integer(index), spendCents: try integer(index + 1), activities: try integer(index + 2), activeMicros: try integer(index + 3))
        }
    }
}

extension BigQueryParameter {
    var display: String {
        switch self {
        case let .date(day): "DATE '\(day)'"
        case let .string(text): "'\(text)'"
        case let .int64(number): String(number)
        case let .strings(values): "[" + values.map { "'\($0)'" }.joined(separator: ", ") + "]"
        }
    }
}

/// Rows and bytes fetched per level, shared by concurrent reads.
final class FetchStatistics: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: (rows: Int, bytes: Int)] = [:]

    func add(level: String, rows: Int, bytes: Int) {
        lock.withLock {
            counts[level, default: (0, 0)].rows += rows
            counts[level, default: (0, 0)].bytes += bytes
        }
    }

    var snapshot: [String: (rows: Int, bytes: Int)] { lock.withLock { counts } }
}
