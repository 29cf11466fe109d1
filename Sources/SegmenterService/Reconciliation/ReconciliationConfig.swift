import Foundation
import SegmenterCore
import Warehouse
import Yams

/// `reconciliation:` in the config (SPEC §6): where the warehouse is, the user's SQL, the
/// schedule and the window of closed days.
public struct ReconciliationConfig: Sendable {
    public enum Target: Sendable {
        case sqlite(path: String)
        case postgres(PostgresSettings)
        case redshift(PostgresSettings)
    }

    public var target: Target
    public var queries: WarehouseQueries
    /// nil: runs only on demand (`reconcile --once`, `POST /api/reconciliation/run`).
    public var schedule: Schedule?
    /// Days compared: `lookback` days ending with the last closed day.
    public var lookbackDays = 35
    /// A day is closed once it ended at least `lag` ago (by the instance clock).
    public var lagSeconds: Int64 = 3600
    /// How the producers of the input topics assign keys to partitions.
    public var partitioner = Partitioner.murmur2Random
    /// A failed run is retried this many times, waiting `retryBackoff`, doubled each time.
    public var retries = 3
    public var retryBackoffSeconds: Int64 = 30

    public func makeWarehouse() throws -> any Warehouse {
        switch target {
        case let .sqlite(path): try SQLiteWarehouse(path: path, queries: queries)
        case let .postgres(settings): PostgresWarehouse(settings: settings, queries: queries)
        case let .redshift(settings): PostgresWarehouse(settings: settings, queries: queries, redshift: true)
        }
    }

    /// The closed days to compare at `now`: `lookback` days through the last one that ended at
    /// least `lag` ago, or from `from` for a backfill.
    public func closedDays(now: Instant, calendar: DayCalendar, from: DayNumber? = nil) -> ClosedRange<DayNumber>? {
        let through = calendar.day(of: now.adding(seconds: -lagSeconds)) - 1
        let first = from ?? (through - DayNumber(lookbackDays - 1))
        return first <= through ? first...through : nil
    }

    static func parse(_ node: Node, reader: YAMLReader, configFile: String) throws -> ReconciliationConfig {
        let entry = try reader.mapping(node, allowed: ["warehouse", "daily_sql", "signups_sql", "every", "cron", "lookback", "lag",
                                                        "partitioner", "retries", "retry_backoff"])
        guard let warehouseNode = entry["warehouse"] else { throw reader.error(node, "reconciliation needs a warehouse:") }
        guard let dailyNode = entry["daily_sql"] else {
            throw reader.error(node, "reconciliation needs daily_sql: a query returning user_id, day, spend, activities, active_seconds")
        }
        let queries = WarehouseQueries(daily: try reader.string(dailyNode), signups: try entry["signups_sql"].map(reader.string))
        var config = ReconciliationConfig(target: try parseTarget(warehouseNode, reader: reader, configFile: configFile), queries: queries)
        if entry["every"] != nil && entry["cron"] != nil { throw reader.error(node, "give either every: or cron:, not both") }
        if let every = entry["every"] {
            let seconds = try reader.duration(every)
            guard seconds >= 60 else { throw reader.error(every, "every: must be at least 1m") }
            config.schedule = .every(seconds: seconds)
        }
        if let cron = entry["cron"] {
            do { config.schedule = .cron(try CronExpression(try reader.string(cron))) } catch let error as CronExpression.ParseError {
                throw reader.error(cron, error.description)
            }
        }
        if let node = entry["lookback"] {
            let seconds = try reader.duration(node)
            guard seconds % 86_400 == 0, (1...3660).contains(seconds / 86_400) else { throw reader.error(node, "lookback must be whole days, like 35d") }
            config.lookbackDays = Int(seconds / 86_400)
        }
        if let node = entry["lag"] { config.lagSeconds = try reader.duration(node) }
        if let node = entry["partitioner"] {
            let text = try reader.string(node)
            guard let partitioner = Partitioner(rawValue: text) else {
                throw reader.error(node, "partitioner must be one of \(Partitioner.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            config.partitioner = partitioner
        }
        if let node = entry["retries"] { config.retries = try reader.integer(node, in: 0...100) }
        if let node = entry["retry_backoff"] { config.retryBackoffSeconds = try reader.duration(node) }
        return config
    }

    private static func parseTarget(_ node: Node, reader: YAMLReader, configFile: String) throws -> Target {
        let entry = try reader.mapping(node, allowed: ["type", "path", "host", "port", "database", "user", "password", "tls",
                                                        "connect_timeout", "query_timeout"])
        let type = try entry["type"].map(reader.string) ?? "sqlite"
        switch type {
        case "sqlite":
            guard let pathNode = entry["path"] else { throw reader.error(node, "a sqlite warehouse needs path:") }
            let path = try reader.string(pathNode)
            let base = URL(fileURLWithPath: configFile).deletingLastPathComponent()
            return .sqlite(path: path.hasPrefix("/") ? path : base.appendingPathComponent(path).path)
        case "postgres", "redshift":
            guard let host = entry["host"], let user = entry["user"] else { throw reader.error(node, "a \(type) warehouse needs host: and user:") }
            let tlsText = try entry["tls"].map(reader.string) ?? (type == "redshift" ? "require" : "prefer")
            guard let tls = PostgresSettings.TLSMode(rawValue: tlsText) else { throw reader.error(entry["tls"]!, "tls must be disable, prefer or require") }
            if type == "redshift" && tls != .require { throw reader.error(entry["tls"]!, "Redshift requires TLS (tls: require)") }
            var settings = PostgresSettings(
                host: try reader.string(host), port: try entry["port"].map { try reader.integer($0, in: 1...65535) } ?? (type == "redshift" ? 5439 : 5432),
                database: try entry["database"].map(reader.string), user: try reader.string(user),
                password: try entry["password"].map(reader.string), tls: tls)
            if let node = entry["connect_timeout"] { settings.connectTimeoutSeconds = try reader.duration(node) }
            if let node = entry["query_timeout"] { settings.queryTimeoutSeconds = try reader.duration(node) }
            return type == "redshift" ? .redshift(settings) : .postgres(settings)
        default:
            throw reader.error(entry["type"]!, "warehouse type must be sqlite, postgres or redshift (bigquery and sqlserver: not yet), not \"\(type)\"")
        }
    }
}
