import Foundation
import Logging
import NIOSSL
import PostgresNIO
@testable import SegmenterCore
@testable import SegmenterStore
import Warehouse
import SQLite

/// The warehouse tables of a scenario: `daily(user_id, day, spend, activities, active_seconds)`
/// and `signups(user_id, signup_at)`, written the way a warehouse holds them (decimal
/// currency units, seconds, dates and timestamps).
struct WarehouseRows {
    var daily: [(user: String, day: String, spend: String, activities: Int64, seconds: String)] = []
    var signups: [(user: String, at: String)] = []

    init(_ events: [UserEvent]) {
        for (user, days) in DriftScenario.daily(events).sorted(by: { $0.key < $1.key }) {
            for (day, sums) in days.sorted(by: { $0.key < $1.key }) {
                daily.append((user, DayCalendar.isoDate(day), Money.format(cents: sums.spendCents), sums.activities,
                              String(format: "%.6f", Double(sums.activeMicros) / 1e6)))
            }
        }
        for (user, seconds) in DriftScenario.signups(events).sorted(by: { $0.key < $1.key }) {
            signups.append((user, Instant(seconds: seconds).description))
        }
    }
}

enum SQLiteWarehouseFixture {
    /// Writes `rows` into a new SQLite file and returns its path.
    static func create(_ rows: WarehouseRows, in directory: URL) throws -> String {
        let path = directory.appendingPathComponent("warehouse-\(UUID().uuidString).sqlite").path
        let db = try SQLiteConnection(path: path)
        try db.execute("""
            CREATE TABLE daily (user_id TEXT, day TEXT, spend REAL, activities INTEGER, active_seconds REAL);
            CREATE TABLE signups (user_id TEXT, signup_at TEXT);
            """)
        try db.transaction {
            let insert = try db.prepare("INSERT INTO daily VALUES (?, ?, CAST(? AS REAL), ?, CAST(? AS REAL))")
            for row in rows.daily {
                insert.reset()
                insert.bind(1, row.user)
                insert.bind(2, row.day)
                insert.bind(3, row.spend)
                insert.bind(4, row.activities)
                insert.bind(5, row.seconds)
                try insert.run()
            }
            let signup = try db.prepare("INSERT INTO signups VALUES (?, ?)")
            for row in rows.signups {
                signup.reset()
                signup.bind(1, row.user)
                signup.bind(2, row.at)
                try signup.run()
            }
        }
        return path
    }

    static let queries = WarehouseQueries(daily: "SELECT user_id, day, spend, activities, active_seconds FROM daily;",
                                          signups: "SELECT user_id, signup_at FROM signups")
}

/// A throwaway schema in the real PostgreSQL server that `scripts/test` starts
/// (`SEGMENTER_TEST_POSTGRES=host:port`, `SEGMENTER_TEST_POSTGRES_PASSWORD`).
struct PostgresFixture {
    static var address: (host: String, port: Int)? {
        guard let text = ProcessInfo.processInfo.environment["SEGMENTER_TEST_POSTGRES"],
              let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        return (String(text[..<colon]), port)
    }

    static var password: String? { ProcessInfo.processInfo.environment["SEGMENTER_TEST_POSTGRES_PASSWORD"] }

    static func settings() -> PostgresSettings? {
        guard let (host, port) = address else { return nil }
        return PostgresSettings(host: host, port: port, database: "postgres", user: "postgres", password: password, tls: .disable)
    }

    /// The server that accepts only TLS (`scripts/postgres-up --tls`), addressed by the name its
    /// self-signed certificate carries, verified against that certificate.
    static func tlsSettings(_ mode: PostgresSettings.TLSMode) -> PostgresSettings? {
        let environment = ProcessInfo.processInfo.environment
        guard let text = environment["SEGMENTER_TEST_POSTGRES_TLS"], let colon = text.lastIndex(of: ":"),
              let port = Int(text[text.index(after: colon)...]) else { return nil }
        var settings = PostgresSettings(host: "localhost", port: port, database: "postgres", user: "postgres",
                                        password: environment["SEGMENTER_TEST_POSTGRES_TLS_PASSWORD"], tls: mode)
        settings.rootCertificateFile = environment["SEGMENTER_TEST_POSTGRES_TLS_ROOT"]
        return settings
    }

    /// On the TLS-only server.
    var tls = false

    let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)

    var queries: WarehouseQueries {
        WarehouseQueries(daily: "SELECT user_id, day, spend, activities, active_seconds FROM \(schema).daily",
                         signups: "SELECT user_id, signup_at FROM \(schema).signups")
    }

    /// Creates the schema with typed tables (`date`, `numeric`, `timestamptz`) holding `rows`.
    func create(_ rows: WarehouseRows) async throws {
        try await withClient { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA \(schema)"))
            try await client.query(PostgresQuery(unsafeSQL: """
                CREATE TABLE \(schema).daily (user_id text, day date, spend numeric(14,2), activities integer, active_seconds double precision)
                """))
            try await client.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(schema).signups (user_id text, signup_at timestamptz)"))
            try await insertDaily(rows.daily, client: client)
            var bindings = PostgresBindings()
            bindings.append(rows.signups.map(\.user))
            bindings.append(rows.signups.map(\.at))
            try await client.query(PostgresQuery(unsafeSQL: """
                INSERT INTO \(schema).signups SELECT * FROM unnest($1::text[], $2::text[]::timestamptz[])
                """, binds: bindings))
        }
    }

    func insertDaily(_ rows: [(user: String, day: String, spend: String, activities: Int64, seconds: String)], client: PostgresClient) async throws {
        var bindings = PostgresBindings()
        bindings.append(rows.map(\.user))
        bindings.append(rows.map(\.day))
        bindings.append(rows.map(\.spend))
        bindings.append(rows.map(\.activities))
        bindings.append(rows.map(\.seconds))
        try await client.query(PostgresQuery(unsafeSQL: """
            INSERT INTO \(schema).daily
            SELECT * FROM unnest($1::text[], $2::text[]::date[], $3::text[]::numeric[], $4::int8[]::int4[], $5::text[]::float8[])
            """, binds: bindings))
    }

    func drop() async throws {
        try await withClient { try await $0.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \(schema) CASCADE")) }
    }

    func withClient<T: Sendable>(_ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        guard let settings = tls ? Self.tlsSettings(.require) : Self.settings() else { throw FixtureError.noServer }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        let client = PostgresClient(configuration: .init(host: settings.host, port: settings.port, username: settings.user,
                                                         password: settings.password, database: settings.database,
                                                         tls: tls ? .require(configuration) : .disable),
                                    backgroundLogger: Logger(label: "test"))
        let runner = Task { await client.run() }
        defer { runner.cancel() }
        return try await body(client)
    }

    enum FixtureError: Error, CustomStringConvertible {
        case noServer
        var description: String {
            "SEGMENTER_TEST_POSTGRES is not set: run the tests through scripts/test, which starts a throwaway PostgreSQL server"
        }
    }
}
