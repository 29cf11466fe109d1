/// What one reconciliation run found and did; kept as history, printed by `reconcile --once`,
/// served at `/api/reconciliation` and summarised on `/metrics`.
public struct ReconciliationReport: Equatable, Sendable, Codable {
    public enum Kind: String, Sendable, Codable { case scheduled, once, backfill }
    public enum Status: String, Sendable, Codable { case running, succeeded, failed }

    public var kind: Kind
    public var status: Status = .running
    /// Why the run failed (the warehouse's or the store's error), nil otherwise.
    public var error: String?
    public var startedAt: Instant
    public var finishedAt: Instant?
    /// The instance clock the closed days were judged by.
    public var now: Instant?
    public var fromDay: String
    public var throughDay: String
    public var daysCompared = 0
    public var daysDiffering: [String] = []
    /// User buckets (see the diff's middle level) compared and differing, over the differing days.
    public var bucketsCompared = 0
    public var bucketsDiffering = 0
    /// Why the bucket level was skipped (the warehouse cannot hash user ids), so differing days
    /// were compared by all of their user rows; nil when buckets were used.
    public var bucketLevelSkipped: String?
    public var userDaysCompared = 0
    public var userDaysCorrected = 0
    /// Rows the warehouse returned: totals of days and buckets, user rows, sign-ups.
    public var rowsFetched = 0
    /// Of which per-user-day rows (the expensive level).
    public var userRowsFetched = 0
    /// Rows (and, where the warehouse tells, response bytes) per level of the diff: `days`,
    /// `buckets`, `users`, `sign-up buckets`, `sign-ups`.
    public var fetchedByLevel: [String: LevelFetch]?
    public var signupBucketsDiffering = 0
    public var signupsCorrected = 0
    public var membershipChanges = 0
    /// Drift in cents, activities and microseconds of activity over the corrected user-days.
    public var spendCents = Drift()
    public var activities = Drift()
    public var activeMicros = Drift()
    /// `metrics_sql`'s levels; nil when none is configured.
    public var metrics: MetricReconciliationSummary?
    public var attempt = 1
    /// Whether a failed run can succeed if tried again (nil: not failed, or from an older release).
    public var retryable: Bool?
    /// When the first attempt of a retried run started (nil on the first attempt).
    public var firstAttemptStartedAt: Instant?

    public struct LevelFetch: Equatable, Sendable, Codable {
        public var rows = 0
        public var bytes: Int?
    }

    /// Counts `rows` fetched at `level`.
    public mutating func noteFetched(_ level: String, rows: Int) {
        var levels = fetchedByLevel ?? [:]
        levels[level, default: LevelFetch()].rows += rows
        fetchedByLevel = levels
    }

    public init(kind: Kind, startedAt: Instant, fromDay: String, throughDay: String) {
        self.kind = kind
        self.startedAt = startedAt
        self.fromDay = fromDay
        self.throughDay = throughDay
    }

    /// The report of a run that could not start or reach the warehouse.
    public static func failed(kind: Kind, attempt: Int = 1, reason: String, startedAt: Instant, finishedAt: Instant) -> ReconciliationReport {
        var report = ReconciliationReport(kind: kind, startedAt: startedAt, fromDay: "", throughDay: "")
        report.status = .failed
        report.error = reason
        report.attempt = attempt
        report.finishedAt = finishedAt
        return report
    }

    public var durationSeconds: Double? {
        finishedAt.map { Double($0.nanoseconds - startedAt.nanoseconds) / 1e9 }
    }

    /// Adds one corrected user-day's drift.
    public mutating func noteCorrection(local: DayAggregate, warehouse: DayAggregate) {
        spendCents.absolute += abs(warehouse.spendCents - local.spendCents)
        activities.absolute += abs(warehouse.activities - local.activities)
        activeMicros.absolute += abs(warehouse.activeMicros - local.activeMicros)
    }

    public mutating func noteWarehouseTotals(_ totals: DayTotals) {
        spendCents.warehouseTotal += totals.spendCents
        activities.warehouseTotal += totals.activities
        activeMicros.warehouseTotal += totals.activeMicros
    }
}
