import Logging
import NIOSSL
import PostgresNIO
import SegmenterCore

/// Connection settings for the PostgreSQL wire protocol (PostgreSQL and Redshift). The
/// password comes from the environment through `${VAR}` in the config and is never logged.
public struct PostgresSettings: Sendable {
    /// libpq's `sslmode` meanings: `require` encrypts without checking who answers (unless
    /// a root certificate is given, then the chain is checked, as libpq does); `verify-ca`
    /// checks the chain; `verify-full` also checks that the certificate names `host`.
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var database: String?
    public var user: String
    public var password: String?
    public var tls: TLSMode
    /// PEM file of the root(s) to verify the server against (`sslrootcert`); nil: the system's.
    public var rootCertificateFile: String?
    public var connectTimeoutSeconds: Int64 = 10
    /// A query that takes longer fails the run (and is retried by the scheduler).
    public var queryTimeoutSeconds: Int64 = 600

    public init(host: String, port: Int, database: String?, user: String, password: String?, tls: TLSMode) {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
        self.tls = tls
    }
}

/// PostgreSQL or Redshift, through postgres-nio. `day` may be a `date` (or text a cast turns
/// into one), `signup_at` a `timestamp with time zone`. The SQL keeps to what both accept:
/// `CAST`, `EXTRACT(EPOCH …)`, `to_char`, `FLOOR`, `ROUND`, no `ON CONFLICT` (nothing is written).
public final class PostgresWarehouse: Warehouse, WarehouseDialect {
    public let label: String
    private let link: ConnectionLink
    private let queries: WarehouseQueries
    private let queryTimeoutSeconds: Int64

    public init(settings: PostgresSettings, queries: WarehouseQueries, redshift: Bool = false) {
        link = ConnectionLink(settings: settings)
        self.queries = queries
        queryTimeoutSeconds = settings.queryTimeoutSeconds
        label = "\(redshift ? "redshift" : "postgres")://\(settings.user)@\(settings.host):\(settings.port)/\(settings.database ?? "")"
    }

    /// Counted users, cents, activities and microseconds, summed in SQL (rounded per row first).
    private static let totals = """
        CAST(COALESCE(SUM(CASE WHEN w.spend <> 0 OR w.activities <> 0 OR w.active_seconds <> 0 THEN 1 ELSE 0 END), 0) AS BIGINT),
        CAST(COALESCE(SUM(ROUND(w.spend * 100)), 0) AS BIGINT), CAST(COALESCE(SUM(w.activities), 0) AS BIGINT),
        CAST(COALESCE(SUM(ROUND(w.active_seconds * 1000000)), 0) AS BIGINT)
        """
    private static let bucket = "SUBSTRING(MD5(CAST(w.user_id AS TEXT)), 1, \(UserBucket.hexDigits))"

    typealias Statement = (step: String, sql: String, values: [BoundValue])

    static func dayTotalsStatement(_ queries: WarehouseQueries, from: String, through: String) -> Statement {
        ("per-day totals", """
            SELECT to_char(CAST(w.day AS DATE), 'YYYY-MM-DD'), \(totals)
            FROM (\(queries.daily)) AS w WHERE CAST(w.day AS DATE) BETWEEN CAST($1 AS DATE) AND CAST($2 AS DATE)
            GROUP BY CAST(w.day AS DATE)
            """, [.text(from), .text(through)])
    }

    static func bucketTotalsStatement(_ queries: WarehouseQueries, day: String) -> Statement {
        ("bucket totals of \(day)", """
            SELECT \(bucket), \(totals) FROM (\(queries.daily)) AS w WHERE CAST(w.day AS DATE) = CAST($1 AS DATE) GROUP BY 1
            """, [.text(day)])
    }

    /// IN with one parameter per bucket: Redshift has no `= ANY(array)`.
    static func userDaysStatement(_ queries: WarehouseQueries, day: String, buckets: [String]?) -> Statement {
        let filter = buckets.map { " AND \(bucket) IN (\($0.indices.map { "$\($0 + 2)" }.joined(separator: ", ")))" } ?? ""
        return ("user rows of \(day)", """
            SELECT CAST(w.user_id AS TEXT), CAST(COALESCE(ROUND(w.spend * 100), 0) AS BIGINT), CAST(COALESCE(w.activities, 0) AS BIGINT),
                   CAST(COALESCE(ROUND(w.active_seconds * 1000000), 0) AS BIGINT)
            FROM (\(queries.daily)) AS w WHERE CAST(w.day AS DATE) = CAST($1 AS DATE)\(filter)
            """, [.text(day)] + (buckets ?? []).map(BoundValue.text))
    }

    static func signupBucketsStatement(_ signups: String) -> Statement {
        ("sign-up buckets", """
            SELECT CAST(FLOOR(s.seconds / 86400.0) AS BIGINT), COUNT(*), CAST(SUM(s.seconds) AS BIGINT)
            FROM (SELECT FLOOR(EXTRACT(EPOCH FROM w.signup_at)) AS seconds FROM (\(signups)) AS w WHERE w.signup_at IS NOT NULL) AS s
            GROUP BY 1
            """, [])
    }

    static func signupsStatement(_ signups: String, bucket: Int64) -> Statement {
        ("sign-ups of bucket \(bucket)", """
            SELECT CAST(s.user_id AS TEXT), CAST(s.seconds AS BIGINT)
            FROM (SELECT w.user_id, FLOOR(EXTRACT(EPOCH FROM w.signup_at)) AS seconds FROM (\(signups)) AS w) AS s
            WHERE s.seconds >= $1 AND s.seconds < $2
            """, [.integer(bucket * 86_400), .integer((bucket + 1) * 86_400)])
    }

    /// A metric's value in millionths, rounded per row (NUMERIC: exact).
    private static let millionths = "ROUND(CAST(w.value AS NUMERIC) * 1000000)"

    static func metricDayTotalsStatement(_ metrics: String, from: String, through: String) -> Statement {
        ("per-day metric totals", """
            SELECT to_char(CAST(w.day AS DATE), 'YYYY-MM-DD'), CAST(w.metric AS TEXT),
                   CAST(COALESCE(SUM(CASE WHEN \(millionths) <> 0 THEN 1 ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM(\(millionths)), 0) AS BIGINT)
            FROM (\(metrics)) AS w WHERE CAST(w.day AS DATE) BETWEEN CAST($1 AS DATE) AND CAST($2 AS DATE) AND w.value IS NOT NULL
            GROUP BY CAST(w.day AS DATE), CAST(w.metric AS TEXT)
            """, [.text(from), .text(through)])
    }

    static func metricValuesStatement(_ metrics: String, day: String, names: [String]) -> Statement {
        ("metric values of \(day)", """
            SELECT CAST(w.user_id AS TEXT), CAST(w.metric AS TEXT), CAST(\(millionths) AS BIGINT) FROM (\(metrics)) AS w
            WHERE CAST(w.day AS DATE) = CAST($1 AS DATE) AND CAST(w.metric AS TEXT) IN (\(names.indices.map { "$\($0 + 2)" }.joined(separator: ", ")))
              AND \(millionths) <> 0
            """, [.text(day)] + names.map(BoundValue.text))
    }

    public var renderedStatements: [RenderedStatement] { Self.rendered(queries) }

    /// The statements a run sends, with example values (no connection needed).
    public static func rendered(_ queries: WarehouseQueries) -> [RenderedStatement] { renderedExamples(queries) }

    static func render(_ statement: Statement) -> RenderedStatement {
        RenderedStatement(step: statement.step, sql: statement.sql,
                          parameters: statement.values.enumerated().map { "$\($0.offset + 1) = \($0.element.display)" })
    }

    public func dayTotals(from: String, through: String) async throws -> [String: DayTotals] {
        try await collect(Self.dayTotalsStatement(queries, from: from, through: through)) { row, result in
            let (day, users, spend, activities, micros) = try row.decode((String, Int64, Int64, Int64, Int64).self)
            result[day] = DayTotals(users: users, spendCents: spend, activities: activities, activeMicros: micros)
        }
    }

    public func bucketTotals(on day: String) async throws -> [String: DayTotals] {
        try await collect(Self.bucketTotalsStatement(queries, day: day)) { row, result in
            let (bucket, users, spend, activities, micros) = try row.decode((String, Int64, Int64, Int64, Int64).self)
            result[bucket] = DayTotals(users: users, spendCents: spend, activities: activities, activeMicros: micros)
        }
    }

    public func userDays(on day: String, buckets: [String]?) async throws -> [String: DayAggregate] {
        try await collect(Self.userDaysStatement(queries, day: day, buckets: buckets)) { row, result in
            let (user, spend, activities, micros) = try row.decode((String, Int64, Int64, Int64).self)
            result[user] = DayAggregate(spendCents: spend, activities: activities, activeMicros: micros)
        }
    }

    public func signupBuckets() async throws -> [Int64: SignupBucket] {
        guard let signups = queries.signups else { return [:] }
        return try await collect(Self.signupBucketsStatement(signups)) { row, result in
            let (bucket, users, sum) = try row.decode((Int64, Int64, Int64).self)
            result[bucket] = SignupBucket(users: users, secondsSum: sum)
        }
    }

    public func signups(inBucket bucket: Int64) async throws -> [String: Int64] {
        guard let signups = queries.signups else { return [:] }
        return try await collect(Self.signupsStatement(signups, bucket: bucket)) { row, result in
            let (user, seconds) = try row.decode((String, Int64).self)
            result[user] = seconds
        }
    }

    public func metricDayTotals(from: String, through: String) async throws -> [String: [String: MetricDayTotals]] {
        guard let metrics = queries.metrics else { return [:] }
        return try await collect(Self.metricDayTotalsStatement(metrics, from: from, through: through)) { row, result in
            let (day, metric, users, millionths) = try row.decode((String, String, Int64, Int64).self)
            result[day, default: [:]][metric] = MetricDayTotals(users: users, millionths: millionths)
        }
    }

    public func metricValues(on day: String, metrics names: [String]) async throws -> [String: [String: Int64]] {
        guard let metrics = queries.metrics, !names.isEmpty else { return [:] }
        return try await collect(Self.metricValuesStatement(metrics, day: day, names: names)) { row, result in
            let (user, metric, millionths) = try row.decode((String, String, Int64).self)
            result[user, default: [:]][metric] = millionths
        }
    }

    public func shutdown() async { await link.close() }

    /// Runs one query with a deadline and folds its rows; errors name the step and carry the
    /// server's message (postgres-nio's own description hides it).
    private func collect<Result: ExpressibleByDictionaryLiteral & Sendable>(
        _ statement: Statement, _ read: @escaping @Sendable (PostgresRow, inout Result) throws -> Void
    ) async throws -> Result {
        var bindings = PostgresBindings()
        for value in statement.values {
            switch value {
            case let .text(text): bindings.append(text)
            case let .integer(number): bindings.append(number)
            }
        }
        let query = PostgresQuery(unsafeSQL: statement.sql, binds: bindings)
        let step = statement.step
        let link = self.link
        let timeout = queryTimeoutSeconds
        do {
            return try await withThrowingTaskGroup(of: Result?.self) { group in
                group.addTask {
                    var result: Result = [:]
                    let connection = try await link.connection()
                    for try await row in try await connection.query(query, logger: link.logger) { try read(row, &result) }
                    return result
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(timeout))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let result = first else {
                    throw WarehouseError(step: step, message: "no answer within \(timeout) s", retryable: true)
                }
                return result
            }
        } catch let error as PSQLError {
            throw WarehouseError(step: step, message: Self.describe(error), retryable: Self.isRetryable(error))
        } catch let error as WarehouseError {
            throw error
        } catch {
            throw WarehouseError(step: step, message: String(describing: error), retryable: true)
        }
    }

    /// The server's answer is final unless its SQLSTATE class says the connection or the server's
    /// resources failed (08, 40, 53, 57, 58); no answer at all (refused, reset, TLS) may succeed
    /// later, except a certificate that does not verify.
    static func isRetryable(_ error: PSQLError) -> Bool {
        if let state = error.serverInfo?[.sqlState] { return ["08", "40", "53", "57", "58"].contains(String(state.prefix(2))) }
        return !describe(error).contains("certificate")
    }

    static func describe(_ error: PSQLError) -> String {
        if let server = error.serverInfo, let message = server[.message] {
            return [server[.sqlState].map { "SQLSTATE \($0)" }, message].compactMap { $0 }.joined(separator: ": ")
        }
        if let underlying = error.underlying {
            let text = "\(underlying)"
            if text.contains("CERTIFICATE_VERIFY_FAILED") {
                return "TLS: the server's certificate could not be verified (give its root as sslrootcert:, or use tls: require to encrypt without checking): \(text)"
            }
            if text.contains("failedToValidateHostname") {
                return "TLS: the server's certificate does not name the host connected to (tls: verify-ca checks the chain only): \(text)"
            }
            return "\(error.code): \(text)"
        }
        return "\(error.code)"
    }
}

/// Two connections per run, opened on first use and taken in turn: a run's next query (the
/// next day's bucket totals) can run on the server beside the current one. Direct connections,
/// not a pool: one fails at once with the cause (a pool would keep retrying in the background).
actor ConnectionLink {
    private let settings: PostgresSettings
    private var open: [PostgresConnection] = []
    private var turn = 0
    static let width = 2
    /// postgres-nio logs every protocol step below `warning`.
    nonisolated let logger: Logger = {
        var logger = Logger(label: "segmenter.warehouse")
        logger.logLevel = .warning
        return logger
    }()

    init(settings: PostgresSettings) { self.settings = settings }

    func connection() async throws -> PostgresConnection {
        open.removeAll { $0.isClosed }
        turn += 1
        if open.count < Self.width {
            let connection = try await connect(id: turn)
            open.append(connection)
            return connection
        }
        return open[turn % open.count]
    }

    private func connect(id: Int) async throws -> PostgresConnection {
        let tls: PostgresConnection.Configuration.TLS = switch settings.tls {
        case .disable: .disable
        case .prefer: .prefer(try NIOSSLContext(configuration: Self.tlsConfiguration(settings)))
        case .require, .verifyCA, .verifyFull: .require(try NIOSSLContext(configuration: Self.tlsConfiguration(settings)))
        }
        var configuration = PostgresConnection.Configuration(host: settings.host, port: settings.port, username: settings.user,
                                                             password: settings.password, database: settings.database, tls: tls)
        configuration.options.connectTimeout = .seconds(settings.connectTimeoutSeconds)
        return try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
    }

    /// What the server's certificate must satisfy, by mode (see `TLSMode`).
    static func tlsConfiguration(_ settings: PostgresSettings) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let file = settings.rootCertificateFile { configuration.trustRoots = .file(file) }
        configuration.certificateVerification = switch settings.tls {
        case .verifyFull: .fullVerification
        case .verifyCA: .noHostnameVerification
        case .disable, .prefer, .require: settings.rootCertificateFile == nil ? .none : .noHostnameVerification
        }
        return configuration
    }

    func close() async {
        for connection in open { try? await connection.close() }
        open = []
    }
}
