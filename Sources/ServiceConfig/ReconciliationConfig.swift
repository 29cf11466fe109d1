import Foundation
import SegmenterCore
import SQLServerIO
import Warehouse
import Yams

/// `reconciliation:` in the config (SPEC §6): where the warehouse is, the user's SQL, the
/// schedule and the window of closed days.
public struct ReconciliationConfig: Sendable {
    public enum Target: Sendable {
        case sqlite(path: String)
        case postgres(PostgresSettings)
        case redshift(PostgresSettings)
        case bigquery(BigQuerySettings)
        case sqlserver(TDSSettings)
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

    /// - Parameter clock: what time-outs and token expiries are read from.
    public func makeWarehouse(clock: any ServiceClock = SystemClock()) throws -> any Warehouse {
        switch target {
        case let .sqlite(path): try SQLiteWarehouse(path: path, queries: queries)
        case let .postgres(settings): PostgresWarehouse(settings: settings, queries: queries)
        case let .redshift(settings): PostgresWarehouse(settings: settings, queries: queries, redshift: true)
        case let .bigquery(settings): try BigQueryWarehouse(settings: settings, queries: queries, clock: clock)
        case let .sqlserver(settings): SQLServerWarehouse(settings: settings, queries: queries)
        }
    }

    /// The statements a run sends to this warehouse, with example values (for `validate`).
    public var renderedStatements: [RenderedStatement] {
        switch target {
        case .sqlite: SQLiteWarehouse.rendered(queries)
        case .postgres, .redshift: PostgresWarehouse.rendered(queries)
        case .bigquery: BigQueryWarehouse.rendered(queries)
        case .sqlserver: SQLServerWarehouse.rendered(queries)
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
        let entry = try reader.mapping(node, allowed: ["warehouse", "daily_sql", "signups_sql", "metrics_sql", "every", "cron", "lookback", "lag",
                                                        "partitioner", "retries", "retry_backoff"])
        guard let warehouseNode = entry["warehouse"] else { throw reader.error(node, "reconciliation needs a warehouse:") }
        guard let dailyNode = entry["daily_sql"] else {
            throw reader.error(node, "reconciliation needs daily_sql: a query returning user_id, day, spend, activities, active_seconds")
        }
        let queries = WarehouseQueries(daily: try reader.string(dailyNode), signups: try entry["signups_sql"].map(reader.string),
                                       metrics: try entry["metrics_sql"].map(reader.string))
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
        let entry = try reader.mapping(node, allowed: nil)
        let type = try entry["type"].map(reader.string) ?? "sqlite"
        let allowed: Set<String> = switch type {
        case "sqlite": ["type", "path"]
        case "postgres", "redshift": ["type", "host", "port", "database", "user", "password", "tls", "sslrootcert", "connect_timeout", "query_timeout"]
        case "bigquery": ["type", "project", "dataset", "location", "endpoint", "credentials_file", "access_token", "query_timeout", "page_size"]
        case "sqlserver": ["type", "host", "port", "database", "user", "password", "encrypt", "trust_server_certificate", "ca_file",
                           "connect_timeout", "query_timeout"]
        default: throw reader.error(entry["type"]!, "warehouse type must be sqlite, postgres, redshift, bigquery or sqlserver, not \"\(type)\"")
        }
        _ = try reader.mapping(node, allowed: allowed)
        let base = URL(fileURLWithPath: configFile).deletingLastPathComponent()
        func path(_ node: Node) throws -> String {
            let text = try reader.string(node)
            return text.hasPrefix("/") ? text : base.appendingPathComponent(text).path
        }
        switch type {
        case "sqlite":
            guard let pathNode = entry["path"] else { throw reader.error(node, "a sqlite warehouse needs path:") }
            return .sqlite(path: try path(pathNode))
        case "bigquery":
            guard let project = entry["project"] else { throw reader.error(node, "a bigquery warehouse needs project:") }
            if entry["credentials_file"] != nil && entry["access_token"] != nil {
                throw reader.error(node, "give either credentials_file: or access_token:, not both")
            }
            var settings = BigQuerySettings(project: try reader.string(project))
            settings.dataset = try entry["dataset"].map(reader.string)
            settings.location = try entry["location"].map(reader.string)
            if let node = entry["endpoint"] {
                let text = try reader.string(node)
                guard let url = URL(string: text), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                    throw reader.error(node, "endpoint must be an http(s) URL, like https://bigquery.googleapis.com")
                }
                settings.endpoint = text
            }
            if let node = entry["credentials_file"] { settings.auth = .serviceAccountKey(path: try path(node)) }
            if let node = entry["access_token"] { settings.auth = .accessToken(try reader.string(node)) }
            if let node = entry["query_timeout"] { settings.queryTimeoutSeconds = try reader.duration(node) }
            if let node = entry["page_size"] { settings.pageSize = try reader.integer(node, in: 1...100_000) }
            return .bigquery(settings)
        case "sqlserver":
            guard let host = entry["host"], let user = entry["user"] else { throw reader.error(node, "a sqlserver warehouse needs host: and user:") }
            let encryptText = try entry["encrypt"].map(reader.string) ?? "require"
            guard let encryption = TDSSettings.Encryption(rawValue: encryptText) else {
                throw reader.error(entry["encrypt"]!, "encrypt must be require, prefer or off")
            }
            var settings = TDSSettings(host: try reader.string(host), port: try entry["port"].map { try reader.integer($0, in: 1...65535) } ?? 1433,
                                       database: try entry["database"].map(reader.string), user: try reader.string(user),
                                       password: try entry["password"].map(reader.string), encryption: encryption,
                                       trustServerCertificate: try entry["trust_server_certificate"].map(reader.boolean) ?? false,
                                       caFile: try entry["ca_file"].map(path))
            if let node = entry["connect_timeout"] { settings.loginTimeoutSeconds = Int(try reader.duration(node)) }
            if let node = entry["query_timeout"] { settings.queryTimeoutSeconds = Int(try reader.duration(node)) }
            return .sqlserver(settings)
        default:
            guard let host = entry["host"], let user = entry["user"] else { throw reader.error(node, "a \(type) warehouse needs host: and user:") }
            let tlsText = try entry["tls"].map(reader.string) ?? (type == "redshift" ? "verify-full" : "prefer")
            guard let tls = PostgresSettings.TLSMode(rawValue: tlsText) else {
                throw reader.error(entry["tls"]!, "tls must be one of \(PostgresSettings.TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if type == "redshift" && (tls == .disable || tls == .prefer) {
                throw reader.error(entry["tls"]!, "Redshift requires TLS (tls: require, verify-ca or verify-full)")
            }
            var settings = PostgresSettings(
                host: try reader.string(host), port: try entry["port"].map { try reader.integer($0, in: 1...65535) } ?? (type == "redshift" ? 5439 : 5432),
                database: try entry["database"].map(reader.string), user: try reader.string(user),
                password: try entry["password"].map(reader.string), tls: tls)
            settings.rootCertificateFile = try entry["sslrootcert"].map(path)
            if let node = entry["connect_timeout"] { settings.connectTimeoutSeconds = try reader.duration(node) }
            if let node = entry["query_timeout"] { settings.queryTimeoutSeconds = try reader.duration(node) }
            return type == "redshift" ? .redshift(settings) : .postgres(settings)
        }
    }
}
