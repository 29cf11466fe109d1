import SegmenterCore
import SQLite

/// Reconciliation's reads of one partition database: through the store's own connection, or
/// through a read-only one (`init(readOnlyPath:)`) so that long scans run beside ingest (WAL)
/// instead of between its batches.
public struct PartitionReads: @unchecked Sendable {
    let db: SQLiteConnection

    init(_ db: SQLiteConnection) { self.db = db }

    public init(readOnlyPath path: String) throws {
        db = try SQLiteConnection(path: path, readOnly: true)
        // A run reads whole days: pages mapped (no read() per 1 KiB page) and a larger cache.
        try db.execute("PRAGMA mmap_size = 268435456; PRAGMA cache_size = -32768")
    }

    /// Every user's sums for one day.
    public func userDays(on day: DayNumber) throws -> [String: DayAggregate] {
        // Rows of zeros only keep a day's evidence (see EventEvidence): no sums to compare.
        let statement = try db.prepare("""
            SELECT user_id, spend_cents, activities, active_us FROM user_days
            WHERE day = ? AND (spend_cents <> 0 OR activities <> 0 OR active_us <> 0)
            """)
        statement.bind(1, Int64(day))
        var result: [String: DayAggregate] = [:]
        while try statement.step() {
            result[statement.string(0)!] = DayAggregate(spendCents: statement.int64(1), activities: statement.int64(2), activeMicros: statement.int64(3))
        }
        return result
    }

    /// The sums of one day's users in `buckets` only: through the users' stored buckets (an
    /// index lookup per differing bucket), and the hash for users that have none yet.
    public func userDays(on day: DayNumber, inBuckets buckets: Set<String>, bucketOf: @escaping @Sendable (UnsafeRawBufferPointer) -> String) throws -> [String: DayAggregate] {
        try db.defineFunction("segmenter_bucket", utf8: bucketOf)
        // One bound JSON list of buckets (hex digits, nothing to escape), however many.
        let statement = try db.prepare("""
            SELECT d.user_id, d.spend_cents, d.activities, d.active_us FROM user_days d
            WHERE d.day = ?1 AND (d.spend_cents <> 0 OR d.activities <> 0 OR d.active_us <> 0) AND d.user_id IN (
                SELECT user_id FROM users WHERE bucket IN (SELECT value FROM json_each(?2))
                UNION ALL SELECT user_id FROM users WHERE bucket IS NULL AND segmenter_bucket(user_id) IN (SELECT value FROM json_each(?2)))
            """)
        statement.bind(1, Int64(day))
        statement.bind(2, "[" + buckets.sorted().map { "\"\($0)\"" }.joined(separator: ",") + "]")
        var result: [String: DayAggregate] = [:]
        while try statement.step() {
            result[statement.string(0)!] = DayAggregate(spendCents: statement.int64(1), activities: statement.int64(2), activeMicros: statement.int64(3))
        }
        return result
    }

    /// Sign-up times in whole epoch seconds, per user who has one.
    public func signupSeconds() throws -> [String: Int64] {
        let statement = try db.prepare("SELECT user_id, signup_at FROM users WHERE signup_at IS NOT NULL")
        var result: [String: Int64] = [:]
        while try statement.step() { result[statement.string(0)!] = Instant(nanoseconds: statement.int64(1)).epochSeconds }
        return result
    }
}

/// Reconciliation's one write: taking the warehouse's values for some users' days.
extension PartitionStore {
    /// The reads through this store's own connection (on the thread that owns the store).
    public var reads: PartitionReads { PartitionReads(db) }

    /// Stores the bucket of every user who has none yet (users new since the last run), so a
    /// run finds a differing bucket's users through an index. A user with sums always has a row.
    public func assignBuckets(bucketOf: @escaping @Sendable (UnsafeRawBufferPointer) -> String) throws {
        try db.defineFunction("segmenter_bucket", utf8: bucketOf)
        try db.transaction { try db.execute("UPDATE users SET bucket = segmenter_bucket(user_id) WHERE bucket IS NULL") }
    }

    /// The users of `candidates` that have state here.
    public func knownUsers(among candidates: some Sequence<String>) throws -> Set<String> {
        var known: Set<String> = []
        for user in candidates where try profile(of: user) != nil { known.insert(user) }
        return known
    }

    /// Takes the warehouse's values per user (`UserCorrection` decides what differs), in one
    /// transaction with the outbox: per-day sums (the day's evidence stays: the events it proves
    /// were applied are still the same events), metric day totals (a zero removes the row), sign-up
    /// times. Each changed user is re-evaluated at the pair's clock, or `now` before it has one
    /// (cause `reconciliation`), so memberships and KPI partials follow.
    /// - Parameter bucketOf: the bucket hash, to keep cached bucket totals of the days valid.
    public func takeWarehouseValues(_ corrections: [String: UserCorrection], now: Instant, bucketOf: (String) -> String) throws -> BatchOutcome {
        var effects = BatchEffects(partials: partials)
        let now = watermark.clock ?? now
        try db.transaction {
            var dayChanges: [(user: String, day: DayNumber, before: DayAggregate, after: DayAggregate)] = []
            var changed: [String: UserProfile] = [:]
            for (userID, correction) in corrections {
                var profile = try self.profile(of: userID) ?? UserProfile()
                let outcome = try correction.take(into: &profile, storedDay: { try storedDay($0, of: userID) },
                                                  storedMetric: { try storedMetricTotal($0, of: userID) })
                for change in outcome.days {
                    try setDay(change.day, of: userID, to: change.after)
                    dayChanges.append((userID, change.day, change.before, change.after))
                }
                for change in outcome.metrics { try setMetricTotal(change.correction, of: userID) }
                if outcome.changesProfile { changed[userID] = profile }
            }
            try applyToBucketCache(dayChanges, bucketOf: bucketOf)
            // The cached users describe the old values: re-read from the transaction.
            let firstDay = segments.catalog.firstWindowDay(at: now, calendar: calendar)
            for (userID, profile) in changed {
                try write(profile, of: userID)
                var slice = try readSlice(of: userID, profile: profile, firstDay: firstDay)
                effects.outcome.membershipChanges += processor.evaluate(userID, &slice, now: now, cause: .reconciliation, into: &effects)
                effects.slices[userID] = slice
            }
            effects.outcome.membershipChangesByCause[.reconciliation] = effects.outcome.membershipChanges
            try write(effects)
        }
        try remember(effects)
        return effects.outcome
    }

    private func storedDay(_ day: DayNumber, of userID: String) throws -> DayAggregate {
        let select = try db.cached("SELECT spend_cents, activities, active_us FROM user_days WHERE user_id = ? AND day = ?")
        select.bind(1, userID)
        select.bind(2, Int64(day))
        defer { select.reset() }
        return try select.step() ? DayAggregate(spendCents: select.int64(0), activities: select.int64(1), activeMicros: select.int64(2)) : DayAggregate()
    }

    private func setDay(_ day: DayNumber, of userID: String, to sums: DayAggregate) throws {
        let set = try db.cached("""
            INSERT INTO user_days (user_id, day, spend_cents, activities, active_us) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (user_id, day) DO UPDATE SET spend_cents = excluded.spend_cents, activities = excluded.activities,
                active_us = excluded.active_us
            """)
        set.bind(1, userID)
        set.bind(2, Int64(day))
        set.bind(3, sums.spendCents)
        set.bind(4, sums.activities)
        set.bind(5, sums.activeMicros)
        try set.run()
    }

    private func storedMetricTotal(_ correction: MetricDayCorrection, of userID: String) throws -> Int64 {
        let select = try db.cached("SELECT total FROM user_metric_days WHERE user_id = ?1 AND day = ?2 AND metric = ?3")
        select.bind(1, userID)
        select.bind(2, Int64(correction.day))
        select.bind(3, correction.key.rawValue)
        defer { select.reset() }
        return try select.step() ? select.int64(0) : 0
    }

    private func setMetricTotal(_ correction: MetricDayCorrection, of userID: String) throws {
        let statement = try db.cached(correction.total == 0
            ? "DELETE FROM user_metric_days WHERE user_id = ?1 AND day = ?2 AND metric = ?3"
            : """
              INSERT INTO user_metric_days (user_id, day, metric, total) VALUES (?1, ?2, ?3, ?4)
              ON CONFLICT (user_id, day, metric) DO UPDATE SET total = excluded.total
              """)
        statement.bind(1, userID)
        statement.bind(2, Int64(correction.day))
        statement.bind(3, correction.key.rawValue)
        if correction.total != 0 { statement.bind(4, correction.total) }
        try statement.run()
    }

    /// What a run took from the warehouse: the built-in sums, or the metric counts and sums.
    public enum ReconciledValues: String, Sendable {
        case sums = "reconciled"
        case metrics = "metrics_reconciled"
    }

    /// Records that the warehouse owns `values` of `days` from now on (widening what was owned).
    public func markReconciled(_ days: ClosedRange<DayNumber>, _ values: ReconciledValues = .sums) throws {
        let current = values == .sums ? reconciledDays : metricsReconciledDays
        let merged = current.map { min($0.lowerBound, days.lowerBound)...max($0.upperBound, days.upperBound) } ?? days
        try db.transaction {
            try putMeta("\(values.rawValue)_from_day", Int64(merged.lowerBound))
            try putMeta("\(values.rawValue)_through_day", Int64(merged.upperBound))
        }
        switch values {
        case .sums: reconciledDays = merged
        case .metrics: metricsReconciledDays = merged
        }
    }

    func storedReconciledDays(of values: ReconciledValues = .sums) throws -> ClosedRange<DayNumber>? {
        guard let from = try meta("\(values.rawValue)_from_day"), let through = try meta("\(values.rawValue)_through_day") else { return nil }
        return DayNumber(from)...DayNumber(through)
    }
}
