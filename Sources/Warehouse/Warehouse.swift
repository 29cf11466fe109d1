import SegmenterCore

/// A source of truth that arrives late: per user and day sums, and sign-up times.
///
/// Every method answers one level of the hierarchical diff, so a run asks for user rows only
/// where a cheaper level already found a difference. Days are ISO dates in the configured
/// time zone; the user's SQL must use the same zone. Values come back as integers (cents,
/// counts, microseconds, epoch seconds), converted by the warehouse, so no float rounding
/// differs between the two sides.
public protocol Warehouse: Sendable {
    /// What to call it in reports and logs (never includes credentials).
    var label: String { get }
    /// Totals per day for the days from `from` through `through` (inclusive).
    func dayTotals(from: String, through: String) async throws -> [String: DayTotals]
    /// Totals per user bucket (see `UserBucket`) of one day.
    func bucketTotals(on day: String) async throws -> [String: DayTotals]
    /// The sums of one day's users in `buckets` (nil: every user of the day).
    func userDays(on day: String, buckets: [String]?) async throws -> [String: DayAggregate]
    /// Sign-ups per UTC day of sign-up (empty when no sign-up query is configured).
    func signupBuckets() async throws -> [Int64: SignupBucket]
    /// Sign-up second per user for the users who signed up in one UTC day bucket.
    func signups(inBucket bucket: Int64) async throws -> [String: Int64]
    /// `metrics_sql`: per day, then metric name, the users with a non-zero value and the sum of
    /// values in millionths (empty when no metrics query is configured).
    func metricDayTotals(from: String, through: String) async throws -> [String: [String: MetricDayTotals]]
    /// `metrics_sql`: one day's non-zero values of `metrics`, in millionths, per user and metric name.
    func metricValues(on day: String, metrics: [String]) async throws -> [String: [String: Int64]]
    /// Closes connections.
    func shutdown() async
    /// The statements a run sends, rendered with example values (`validate` prints them).
    var renderedStatements: [RenderedStatement] { get }
    /// Response bytes read so far per level of the diff, where the protocol makes them known.
    var bytesFetchedByLevel: [String: Int] { get }
}

extension Warehouse {
    public var bytesFetchedByLevel: [String: Int] { [:] }
}

/// One statement as the warehouse receives it, and the values bound to its parameters.
public struct RenderedStatement: Sendable {
    public let step: String
    public let sql: String
    /// `name = value`, in the warehouse's own spelling of parameters.
    public let parameters: [String]
}

/// A value bound to a parameter: never part of the SQL text.
enum BoundValue: Sendable, Equatable {
    case text(String)
    case integer(Int64)

    var display: String {
        switch self {
        case let .text(text): "'\(text)'"
        case let .integer(number): String(number)
        }
    }
}

/// The statements a run sends, as one warehouse spells them (SQL plus its parameters), so
/// that what a run sends and what `validate` prints come from the same functions.
protocol WarehouseDialect {
    associatedtype Built
    static func dayTotalsStatement(_ queries: WarehouseQueries, from: String, through: String) -> Built
    static func bucketTotalsStatement(_ queries: WarehouseQueries, day: String) -> Built
    static func userDaysStatement(_ queries: WarehouseQueries, day: String, buckets: [String]?) -> Built
    static func signupBucketsStatement(_ signups: String) -> Built
    static func signupsStatement(_ signups: String, bucket: Int64) -> Built
    static func metricDayTotalsStatement(_ metrics: String, from: String, through: String) -> Built
    static func metricValuesStatement(_ metrics: String, day: String, names: [String]) -> Built
    /// The statement with its parameters written out the way this warehouse names them.
    static func render(_ statement: Built) -> RenderedStatement
}

extension WarehouseDialect {
    /// Every statement of a run, with example values (no connection needed).
    static func renderedExamples(_ queries: WarehouseQueries) -> [RenderedStatement] {
        let day = "2026-01-31"
        var statements = [dayTotalsStatement(queries, from: "2026-01-01", through: day), bucketTotalsStatement(queries, day: day),
                          userDaysStatement(queries, day: day, buckets: ["0a1", "f3c"])]
        if let signups = queries.signups { statements += [signupBucketsStatement(signups), signupsStatement(signups, bucket: 20_454)] }
        if let metrics = queries.metrics {
            statements += [metricDayTotalsStatement(metrics, from: "2026-01-01", through: day),
                           metricValuesStatement(metrics, day: day, names: ["logins", "revenue"])]
        }
        return statements.map(render)
    }
}

/// The user's queries, as configured. Each is used as a sub-query; its text is the operator's
/// configuration, while every value the service supplies (days, buckets) is a bound parameter.
public struct WarehouseQueries: Sendable {
    /// Returns `user_id, day, spend, activities, active_seconds`, one row per user and day.
    public var daily: String
    /// Returns `user_id, signup_at`; optional.
    public var signups: String?
    /// Returns `user_id, day, metric, value`, one row per user, day and metric (SPEC §4b); optional.
    public var metrics: String?

    public init(daily: String, signups: String? = nil, metrics: String? = nil) {
        self.daily = Self.trimmed(daily)
        self.signups = signups.map(Self.trimmed)
        self.metrics = metrics.map(Self.trimmed)
    }

    /// Without trailing whitespace and semicolons, so the text can sit inside parentheses.
    static func trimmed(_ sql: String) -> String {
        var text = Substring(sql)
        while let last = text.last, last == ";" || last.isWhitespace { text.removeLast() }
        return String(text)
    }
}

/// The warehouse cannot compute the bucket hash (a server without `HASHBYTES`, say): the run
/// compares a differing day by all of its user rows instead, and says so in its report.
public struct BucketsUnavailable: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { "user buckets unavailable: \(reason)" }
}

/// A warehouse query failed: says which step, and the warehouse's own message.
public struct WarehouseError: Error, CustomStringConvertible, Sendable {
    public let step: String
    public let message: String
    /// Whether trying again later can succeed (a connection, a timeout, a busy server), as
    /// opposed to an answer that will be the same (a missing table, bad SQL, refused credentials):
    /// only these are retried.
    public let retryable: Bool
    public init(step: String, message: String, retryable: Bool = false) {
        self.step = step
        self.message = message
        self.retryable = retryable
    }
    public var description: String { "warehouse \(step) failed: \(message)" }
}
