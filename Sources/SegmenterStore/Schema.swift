import SegmenterCore
import SQLite

/// Versioned migrations of a partition database, numbered by `PRAGMA user_version`.
///
/// Append new steps; never edit a released one. Each step runs in its own transaction.
enum Schema {
    /// One step: SQL, or SQL followed by a data migration in Swift (which may need the calendar).
    struct Step: Sendable {
        let sql: String
        var data: (@Sendable (SQLiteConnection, DayCalendar) throws -> Void)?
    }

    static let migrations: [Step] = sqlMigrations.map { Step(sql: $0) } + [
        // 4: evidence of applied event ids moves from one row per event into its user-day row
        // (64-bit hashes, see EventEvidence).
        Step(sql: "ALTER TABLE user_days ADD COLUMN evidence BLOB", data: moveSeenEventsIntoDays),
        // 5: reconciliation's local bucket totals, kept between runs (see BucketTotalsCache):
        // a day's version moves with every write to its sums; a cached day is valid while its
        // version is the one it was computed at. Each user's bucket, filled in by a run, so it
        // reads only the differing buckets' rows of a day.
        Step(sql: """
            CREATE TABLE day_versions (day INTEGER PRIMARY KEY, version INTEGER NOT NULL);
            CREATE TABLE bucket_totals (
                day INTEGER NOT NULL,
                bucket TEXT NOT NULL,
                users INTEGER NOT NULL,
                spend_cents INTEGER NOT NULL,
                activities INTEGER NOT NULL,
                active_us INTEGER NOT NULL,
                PRIMARY KEY (day, bucket)
            ) WITHOUT ROWID;
            CREATE TABLE bucket_totals_days (day INTEGER PRIMARY KEY, version INTEGER NOT NULL);
            ALTER TABLE users ADD COLUMN bucket TEXT;
            CREATE INDEX users_by_bucket ON users (bucket) WHERE bucket IS NOT NULL;
            CREATE INDEX users_without_bucket ON users (user_id) WHERE bucket IS NULL;
            """),
        // 6: the history is exact (SPEC §7): events ahead of the pair's clock wait, per user, in
        // arrival order (see PendingEventCodec), until it reaches them; and each user's recent
        // membership changes as published, for `explain`.
        Step(sql: """
            CREATE TABLE pending_events (user_id TEXT PRIMARY KEY, events BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE membership_history (
                user_id TEXT NOT NULL,
                segment TEXT NOT NULL,
                entered INTEGER NOT NULL,
                as_of INTEGER NOT NULL,
                cause TEXT NOT NULL
            );
            CREATE INDEX membership_history_by_user ON membership_history (user_id, as_of);
            CREATE INDEX membership_history_by_time ON membership_history (as_of);
            """),
        // 7: metrics over any event (SPEC §4b). Per user, what is not per day (see MetricCodec);
        // per user-day and metric (its key, see MetricKey), the total that events add to, and
        // the distinct values seen (a set: inserting one twice changes nothing).
        Step(sql: """
            ALTER TABLE users ADD COLUMN metrics BLOB;
            CREATE TABLE user_metric_days (
                user_id TEXT NOT NULL,
                day INTEGER NOT NULL,
                metric INTEGER NOT NULL,
                total INTEGER NOT NULL,
                PRIMARY KEY (user_id, day, metric)
            ) WITHOUT ROWID;
            CREATE TABLE user_metric_values (
                user_id TEXT NOT NULL,
                day INTEGER NOT NULL,
                metric INTEGER NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (user_id, day, metric, value)
            ) WITHOUT ROWID;
            """),
        // 8: an outbox value may be NULL: a tombstone of the compacted members table
        // (`topics.members`). SQLite cannot drop NOT NULL in place: the table is copied.
        Step(sql: """
            CREATE TABLE outbox_v8 (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL,
                key BLOB,
                value BLOB,
                created_at INTEGER NOT NULL
            );
            INSERT INTO outbox_v8 (id, topic, key, value, created_at) SELECT id, topic, key, value, created_at FROM outbox;
            DROP TABLE outbox;
            ALTER TABLE outbox_v8 RENAME TO outbox;
            """),
        // 9: the KPI publisher's tables (used in partition 0's database, by the instance that
        // leads KPIs): each pair's last published value and seq, daily values for baselines,
        // alert states, the publisher's own meta, and the charts' series and firing periods.
        // The publisher created them itself before; IF NOT EXISTS keeps those it made.
        Step(sql: """
            CREATE TABLE IF NOT EXISTS kpi_published (
                segment TEXT NOT NULL, kpi TEXT NOT NULL, value_bits INTEGER, seq INTEGER NOT NULL,
                PRIMARY KEY (segment, kpi)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS kpi_history (
                segment TEXT NOT NULL, kpi TEXT NOT NULL, day INTEGER NOT NULL, value_bits INTEGER NOT NULL,
                PRIMARY KEY (segment, kpi, day)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS alert_states (
                name TEXT PRIMARY KEY, state TEXT NOT NULL, pending_since INTEGER,
                value_bits INTEGER, baseline_bits INTEGER, drill_down TEXT) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS publisher_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS kpi_series (
                segment TEXT NOT NULL, kpi TEXT NOT NULL, bucket INTEGER NOT NULL, at INTEGER NOT NULL, value_bits INTEGER,
                PRIMARY KEY (segment, kpi, bucket)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS alert_periods (
                name TEXT NOT NULL, started INTEGER NOT NULL, ended INTEGER,
                PRIMARY KEY (name, started)) WITHOUT ROWID;
            """),
    ]

    /// `reconciliation.sqlite`, beside the partition databases: every run's report
    /// (`ReconciliationHistory`), numbered by its own `user_version`.
    static let reconciliationHistory: [Step] = [
        // 1: one row per run, its report as JSON.
        Step(sql: """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                started_at INTEGER NOT NULL,
                status TEXT NOT NULL,
                report TEXT NOT NULL  -- ReconciliationReport as JSON
            );
            """),
    ]

    static let sqlMigrations: [String] = [
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

    /// Brings `connection` to the newest schema of `steps` (a partition database's by default).
    static func migrate(_ connection: SQLiteConnection, calendar: DayCalendar, steps: [Step] = migrations) throws {
        let current = try connection.userVersion
        guard current <= steps.count else {
            throw SQLiteError(code: 1, message: "state schema version \(current) is newer than this build (\(steps.count)); upgrade segmenter", sql: nil)
        }
        for (index, step) in steps.enumerated().dropFirst(current) {
            // journal_mode cannot change inside a transaction: such a step runs on its own.
            if step.sql.contains("PRAGMA journal_mode") {
                try connection.execute(step.sql)
                try step.data?(connection, calendar)
                try connection.execute("PRAGMA user_version = \(index + 1)")
                continue
            }
            try connection.transaction {
                try connection.execute(step.sql)
                try step.data?(connection, calendar)
                try connection.execute("PRAGMA user_version = \(index + 1)")
            }
        }
    }
}

extension Schema {
    /// The release before state v2 kept one `seen_events` row per event id and deleted those
    /// older than its horizon (7 days by default) behind its partition's event time, once a day
    /// (`seen_pruned_at`). Each id it kept becomes a hash in its user-day's evidence. Ids it had
    /// already deleted cannot be brought back, so events older than its last prune's cutoff are
    /// from now on treated as older than the horizon (`evidence_floor`): never applied twice.
    /// (A shorter `dedupe_horizon` configured for that release would have deleted more than
    /// this floor assumes; the default and longer ones are covered.) Its one event time for the
    /// whole partition gives way to one per input topic, learnt from the next events.
    static func moveSeenEventsIntoDays(_ db: SQLiteConnection, calendar: DayCalendar) throws {
        var evidence: [UserDay: EventEvidence] = [:]
        let seen = try db.prepare("SELECT user_id, event_id, ts FROM seen_events")
        while try seen.step() {
            let day = calendar.day(of: Instant(nanoseconds: seen.int64(2)))
            _ = evidence[UserDay(seen.string(0)!, day), default: EventEvidence()].insert(seen.string(1)!)
        }
        seen.reset()  // a statement still stepping would lock the table DROP removes
        let write = try db.prepare("""
            INSERT INTO user_days (user_id, day, evidence) VALUES (?, ?, ?)
            ON CONFLICT (user_id, day) DO UPDATE SET evidence = excluded.evidence
            """)
        for (userDay, ids) in evidence {
            write.reset()
            write.bind(1, userDay.userID)
            write.bind(2, Int64(userDay.day))
            write.bind(3, blob: ids.encoded)
            try write.run()
        }
        try db.execute("""
            INSERT INTO meta (key, value) SELECT 'evidence_floor', value - \(previousReleaseHorizonSeconds) * 1000000000
            FROM meta WHERE key = 'seen_pruned_at';
            DROP TABLE seen_events;
            DELETE FROM meta WHERE key IN ('seen_pruned_at', 'partition_event_time')
            """)
    }

    /// The previous release's default `dedupe_horizon`.
    static let previousReleaseHorizonSeconds: Int64 = 7 * 86_400
}
