/// Versioned migrations of a partition database, numbered by `PRAGMA user_version`.
///
/// Append new steps; never edit a released one. Each step runs in its own transaction.
enum Schema {
    static let migrations: [String] = [
        // 1: per-user state, per-day sums, dedupe set, offsets, outbox, clock.
        """
        CREATE TABLE users (
            user_id TEXT PRIMARY KEY,
            signup_at INTEGER,
            last_activity_at INTEGER,
            lifetime_spend_cents INTEGER NOT NULL DEFAULT 0,
            lifetime_activities INTEGER NOT NULL DEFAULT 0,
            lifetime_active_us INTEGER NOT NULL DEFAULT 0,
            activity_before_signup BLOB,
            attributes TEXT,
            accounts TEXT
        ) WITHOUT ROWID;
        CREATE TABLE user_days (
            user_id TEXT NOT NULL,
            day INTEGER NOT NULL,
            spend_cents INTEGER NOT NULL DEFAULT 0,
            activities INTEGER NOT NULL DEFAULT 0,
            active_us INTEGER NOT NULL DEFAULT 0 CHECK (active_us >= 0),
            PRIMARY KEY (user_id, day)
        ) WITHOUT ROWID;
        CREATE TABLE seen_events (
            user_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            ts INTEGER NOT NULL,
            PRIMARY KEY (user_id, event_id)
        ) WITHOUT ROWID;
        CREATE TABLE offsets (
            topic TEXT NOT NULL,
            partition INTEGER NOT NULL,
            next_offset INTEGER NOT NULL CHECK (next_offset >= 0),
            PRIMARY KEY (topic, partition)
        ) WITHOUT ROWID;
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            topic TEXT NOT NULL,
            key BLOB,
            value BLOB NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
        """,
        // 2: segment membership with each member's KPI contributions, time-driven timers,
        // per-partition KPI partial sums (combined into global values by the emitter).
        """
        CREATE TABLE memberships (
            user_id TEXT NOT NULL,
            segment TEXT NOT NULL,
            contributions BLOB NOT NULL,  -- the member's KPI contributions, see ContributionCodec
            PRIMARY KEY (user_id, segment)
        ) WITHOUT ROWID;
        CREATE TABLE timers (
            user_id TEXT PRIMARY KEY,
            due INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX timers_by_due ON timers (due, user_id);
        CREATE TABLE kpi_partials (
            segment TEXT NOT NULL,
            kpi TEXT NOT NULL,
            counted INTEGER NOT NULL,
            total_bits INTEGER NOT NULL,  -- the Double total, bit for bit
            PRIMARY KEY (segment, kpi)
        ) WITHOUT ROWID;
        CREATE TABLE meta_text (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
        // 3: reconciliation reads one day across users (per-day totals, a day's user rows).
        """
        CREATE INDEX user_days_by_day ON user_days (day);
        """,
    ]

    /// Brings `connection` to the newest schema.
    static func migrate(_ connection: SQLiteConnection) throws {
        let current = try connection.userVersion
        guard current <= migrations.count else {
            throw SQLiteError(code: 1, message: "state schema version \(current) is newer than this build (\(migrations.count)); upgrade segmenter", sql: nil)
        }
        for (index, sql) in migrations.enumerated().dropFirst(current) {
            try connection.transaction {
                try connection.execute(sql)
                try connection.execute("PRAGMA user_version = \(index + 1)")
            }
        }
    }
}
