import SegmenterCore
import SQLite

/// Reconciliation's local totals per user bucket of a day, kept between runs so that a run
/// reads a day's rows only when they changed since it last looked.
///
/// Every write to a day's sums moves the day's version (`day_versions`): ingest's commit (one
/// upsert per distinct day a batch touches) and reconciliation's corrections. A cached day
/// (`bucket_totals_days`) is valid while its version is the one it was computed at. A
/// correction updates a valid cache by the same differences, in the same transaction, so a day
/// the warehouse just settled stays cached.
extension PartitionReads {
    /// Bucket totals of `day` and the day's version they reflect, read in one transaction:
    /// from the cache when valid (`cached`), otherwise summed in SQL with `bucketOf`, the
    /// warehouses' bucket hash (see `UserBucket`).
    public func bucketTotals(on day: DayNumber, bucketOf: @escaping @Sendable (UnsafeRawBufferPointer) -> String) throws
        -> (totals: [String: DayTotals], version: Int64, cached: Bool) {
        try db.readTransaction {
            let version = try dayVersion(day)
            if try cachedVersion(day) == version {
                let statement = try db.prepare("SELECT bucket, users, spend_cents, activities, active_us FROM bucket_totals WHERE day = ?")
                statement.bind(1, Int64(day))
                return (try Self.totalsByKey(statement), version, true)
            }
            try db.defineFunction("segmenter_bucket", utf8: bucketOf)
            let statement = try db.prepare("""
                SELECT segmenter_bucket(user_id), count(*), sum(spend_cents), sum(activities), sum(active_us) FROM user_days
                WHERE day = ? AND (spend_cents <> 0 OR activities <> 0 OR active_us <> 0) GROUP BY 1
                """)
            statement.bind(1, Int64(day))
            return (try Self.totalsByKey(statement), version, false)
        }
    }

    /// Per-day totals over `days`: summed from the cached buckets of the days whose cache is
    /// valid, from the rows (an index range scan) for the others.
    public func dayTotals(in days: ClosedRange<DayNumber>) throws -> [DayNumber: DayTotals] {
        try db.readTransaction {
            let cached = try db.prepare("""
                SELECT b.day, sum(b.users), sum(b.spend_cents), sum(b.activities), sum(b.active_us)
                FROM bucket_totals_days c JOIN bucket_totals b ON b.day = c.day LEFT JOIN day_versions v ON v.day = c.day
                WHERE c.day BETWEEN ? AND ? AND c.version = coalesce(v.version, 0) GROUP BY b.day
                """)
            cached.bind(1, Int64(days.lowerBound))
            cached.bind(2, Int64(days.upperBound))
            var result: [DayNumber: DayTotals] = [:]
            var valid: Set<DayNumber> = []
            while try cached.step() {
                let day = DayNumber(cached.int64(0))
                valid.insert(day)
                result[day] = Self.totals(cached, from: 1)
            }
            let scan = try db.prepare("""
                SELECT sum(spend_cents <> 0 OR activities <> 0 OR active_us <> 0), sum(spend_cents), sum(activities), sum(active_us)
                FROM user_days WHERE day = ? HAVING count(*) > 0
                """)
            for day in days where !valid.contains(day) {
                scan.reset()
                scan.bind(1, Int64(day))
                if try scan.step() { result[day] = Self.totals(scan, from: 0) }
            }
            return result
        }
    }

    func dayVersion(_ day: DayNumber) throws -> Int64 {
        let statement = try db.prepare("SELECT version FROM day_versions WHERE day = ?")
        statement.bind(1, Int64(day))
        return try statement.step() ? statement.int64(0) : 0
    }

    func cachedVersion(_ day: DayNumber) throws -> Int64? {
        let statement = try db.prepare("SELECT version FROM bucket_totals_days WHERE day = ?")
        statement.bind(1, Int64(day))
        return try statement.step() ? statement.int64(0) : nil
    }

    static func totals(_ row: Statement, from index: Int32) -> DayTotals {
        DayTotals(users: row.int64(index), spendCents: row.int64(index + 1), activities: row.int64(index + 2), activeMicros: row.int64(index + 3))
    }

    static func totalsByKey(_ statement: Statement) throws -> [String: DayTotals] {
        var result: [String: DayTotals] = [:]
        while try statement.step() { result[statement.string(0) ?? ""] = totals(statement, from: 1) }
        return result
    }
}

extension PartitionStore {
    /// Keeps `totals`, computed at `version` of `day`, unless the day has moved on since.
    public func cacheBucketTotals(_ totals: [String: DayTotals], of day: DayNumber, version: Int64) throws {
        try db.transaction {
            guard try reads.dayVersion(day) == version else { return }
            let clear = try db.prepare("DELETE FROM bucket_totals WHERE day = ?")
            clear.bind(1, Int64(day))
            try clear.run()
            try add(totals, to: day, version: version)
        }
    }

    /// Adds `totals` to `day`'s cached buckets (into none, after a clear) and records the
    /// version they now reflect.
    private func add(_ totals: [String: DayTotals], to day: DayNumber, version: Int64) throws {
        let add = try db.prepare("""
            INSERT INTO bucket_totals (day, bucket, users, spend_cents, activities, active_us) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (day, bucket) DO UPDATE SET users = users + excluded.users, spend_cents = spend_cents + excluded.spend_cents,
                activities = activities + excluded.activities, active_us = active_us + excluded.active_us
            """)
        for (bucket, sums) in totals {
            add.reset()
            add.bind(1, Int64(day))
            add.bind(2, bucket)
            add.bind(3, sums.users)
            add.bind(4, sums.spendCents)
            add.bind(5, sums.activities)
            add.bind(6, sums.activeMicros)
            try add.run()
        }
        let mark = try db.prepare("INSERT OR REPLACE INTO bucket_totals_days (day, version) VALUES (?, ?)")
        mark.bind(1, Int64(day))
        mark.bind(2, version)
        try mark.run()
    }

    /// Forgets cached totals and versions of days before `day` (out of every run's window from
    /// now on), so the cache stays as large as the lookback.
    public func pruneBucketCache(before day: DayNumber) throws {
        try db.transaction {
            for table in ["bucket_totals", "bucket_totals_days", "day_versions"] {
                let delete = try db.prepare("DELETE FROM \(table) WHERE day < ?")
                delete.bind(1, Int64(day))
                try delete.run()
            }
        }
    }

    /// Within a correction's transaction: `changes` (user, day, before, after) move the days'
    /// versions, and a day whose cache was valid keeps it valid by the same differences.
    func applyToBucketCache(_ changes: [(user: String, day: DayNumber, before: DayAggregate, after: DayAggregate)],
                            bucketOf: (String) -> String) throws {
        var deltas: [DayNumber: [String: DayTotals]] = [:]
        for change in changes {
            let delta = DayTotals(users: (change.after.isZero ? 0 : 1) - (change.before.isZero ? 0 : 1),
                                  spendCents: change.after.spendCents - change.before.spendCents,
                                  activities: change.after.activities - change.before.activities,
                                  activeMicros: change.after.activeMicros - change.before.activeMicros)
            let bucket = bucketOf(change.user)
            deltas[change.day, default: [:]][bucket] = (deltas[change.day]?[bucket] ?? DayTotals()) + delta
        }
        for (day, buckets) in deltas {
            let valid = try reads.cachedVersion(day) == reads.dayVersion(day)
            try bumpVersion(of: day)
            if valid { try add(buckets, to: day, version: try reads.dayVersion(day)) }
        }
    }
}
