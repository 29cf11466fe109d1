import Foundation
import Logging
import ServiceRuntime
import SegmenterCore
import SegmenterStore
import Warehouse
import ServiceConfig
import Ingest

/// One reconciliation run (SPEC §6), level by level:
///
/// 1. Per-day totals of the closed days, local (summed over owned partitions) and warehouse.
/// 2. For each day that differs: the warehouse's user rows of that day and the local ones;
///    users whose sums differ take the warehouse's values, one transaction per partition,
///    re-evaluated with cause `reconciliation` (membership changes and KPI partials follow).
/// 3. Metrics (`metrics_sql`): per day and metric, then the users of differing ones (see
///    `reconcileMetrics`).
/// 4. Sign-ups: per UTC-day bucket (count, sum of seconds), then users in differing buckets.
/// 5. The compared days are marked as the warehouse's: later stream events for them are not
///    added again (no double counting of what the warehouse already holds).
///
/// Idempotent: values are set, not added, so a retried or repeated run changes nothing more.
public final class Reconciler: Sendable {
    public let config: ReconciliationConfig
    let calendar: DayCalendar
    let access: any StoreAccess
    let partitionCount: Int
    let history: ReconciliationHistory
    let logger: Logger
    /// The reports' start and finish stamps, and the run's `now` before any partition has one.
    let clock: any ServiceClock

    public init(config: ReconciliationConfig, calendar: DayCalendar, access: any StoreAccess, partitionCount: Int,
                history: ReconciliationHistory, logger: Logger, clock: any ServiceClock = SystemClock()) {
        self.config = config
        self.clock = clock
        self.calendar = calendar
        self.access = access
        self.partitionCount = partitionCount
        self.history = history
        self.logger = logger.component("reconciliation")
    }

    /// Runs once against `warehouse`, recording the report in the history as it goes.
    /// - Parameter from: a backfill's first day; otherwise `lookback` days are compared.
    public func run(kind: ReconciliationReport.Kind, from: DayNumber? = nil, warehouse: any Warehouse, attempt: Int = 1) async -> ReconciliationReport {
        let wall = clock.wallNow
        let (now, owned) = (try? await access.withStores { ($0.now, $0.stores.count) }) ?? (nil, 0)
        let runClock = now ?? wall
        var report = ReconciliationReport(kind: kind, startedAt: wall, fromDay: "", throughDay: "")
        report.attempt = attempt
        report.now = runClock
        // Without partitions every warehouse day would look missing here, and nothing could be written.
        guard owned > 0 else { return refused(report, "this instance owns no partitions yet (still joining the consumer group?)", retryable: true) }
        guard let days = config.closedDays(now: runClock, calendar: calendar, from: from) else {
            return refused(report, "no closed day to compare yet (now \(runClock), lag \(config.lagSeconds) s)", retryable: false)
        }
        report.fromDay = DayCalendar.isoDate(days.lowerBound)
        report.throughDay = DayCalendar.isoDate(days.upperBound)
        let id = try? history.insert(report)
        logger.info("reconciliation (\(kind.rawValue)) against \(warehouse.label): days \(report.fromDay) … \(report.throughDay)")
        let bytesBefore = warehouse.bytesFetchedByLevel
        do {
            let firstDay = days.lowerBound
            try await access.withStores { session in
                for store in session.stores.values {
                    try store.assignBuckets(bucketOf: UserBucket.of(utf8:))
                    // A backfill reaches further back than the schedule's window: keep those days.
                    if kind != .backfill { try store.pruneBucketCache(before: firstDay) }
                }
            }
            let readers = try await access.readers()
            var pending = PendingCorrections()
            try await reconcileDays(days, warehouse: warehouse, readers: readers, report: &report, into: &pending)
            try await reconcileMetrics(days, warehouse: warehouse, readers: readers, report: &report, into: &pending)
            try await reconcileSignups(warehouse: warehouse, readers: readers, report: &report, into: &pending)
            try await apply(pending, now: runClock, report: &report)
            if report.metrics != nil, catalogCorrectsMetrics(try await metricCatalog()) {
                try await access.withStores { session in
                    for store in session.stores.values { try store.markReconciled(days, .metrics) }
                }
            }
            try await access.withStores { session in
                for store in session.stores.values { try store.markReconciled(days) }
            }
            report.status = .succeeded
        } catch {
            report.status = .failed
            report.error = String(describing: error)
            // A warehouse says whether its answer can change; anything else (the local state
            // busy, a connection dropped mid-run) may well succeed next time.
            report.retryable = (error as? WarehouseError)?.retryable ?? true
        }
        for (level, bytes) in warehouse.bytesFetchedByLevel where bytes > (bytesBefore[level] ?? 0) {
            report.fetchedByLevel?[level]?.bytes = bytes - (bytesBefore[level] ?? 0)
        }
        report.finishedAt = clock.wallNow
        if let id { try? history.update(id: id, report) }
        log(report)
        return report
    }

    /// A run that could not start: recorded and logged like any other failure.
    private func refused(_ started: ReconciliationReport, _ reason: String, retryable: Bool) -> ReconciliationReport {
        var report = ReconciliationReport.failed(kind: started.kind, attempt: started.attempt, reason: reason,
                                                 startedAt: started.startedAt, finishedAt: clock.wallNow)
        report.now = started.now
        report.retryable = retryable
        _ = try? history.insert(report)
        log(report)
        return report
    }

    private func reconcileDays(_ days: ClosedRange<DayNumber>, warehouse: any Warehouse, readers: [Int32: PartitionReads],
                               report: inout ReconciliationReport, into pending: inout PendingCorrections) async throws {
        let local = try Self.perPartition(readers) { _, reader in try reader.dayTotals(in: days) }.values
            .reduce(into: [DayNumber: DayTotals]()) { $0.merge($1) { $0 + $1 } }
        var truth: [DayNumber: DayTotals] = [:]
        for (text, totals) in try await warehouse.dayTotals(from: DayCalendar.isoDate(days.lowerBound), through: DayCalendar.isoDate(days.upperBound)) {
            guard let day = DayCalendar.dayNumber(isoDate: text) else { throw WarehouseError(step: "per-day totals", message: "bad day \(text)") }
            truth[day] = totals
        }
        report.daysCompared = days.count
        report.rowsFetched += truth.count
        report.noteFetched("days", rows: truth.count)
        for totals in truth.values { report.noteWarehouseTotals(totals) }
        let differing = ReconciliationDiff.differingDays(in: days, local: local, warehouse: truth)
        report.daysDiffering = differing.map(DayCalendar.isoDate)
        // The warehouse works on the next day's bucket totals while this one is compared here.
        // Once it said it cannot compute buckets, it is not asked again in this run.
        var bucketsUnavailable: BucketsUnavailable?
        func bucketTotals(_ day: DayNumber) -> Task<[String: DayTotals], Error> {
            if let bucketsUnavailable { return Task { throw bucketsUnavailable } }
            return Task { try await warehouse.bucketTotals(on: DayCalendar.isoDate(day)) }
        }
        var next = differing.first.map(bucketTotals)
        defer { next?.cancel() }
        for (index, day) in differing.enumerated() {
            let buckets = next!
            next = index + 1 < differing.count ? bucketTotals(differing[index + 1]) : nil
            let step = try await reconcile(day: day, warehouseBuckets: buckets, warehouse: warehouse, readers: readers)
            if let reason = step.bucketLevelSkipped, bucketsUnavailable == nil {
                bucketsUnavailable = BucketsUnavailable(reason: reason)
                next?.cancel()
                next = index + 1 < differing.count ? bucketTotals(differing[index + 1]) : nil
            }
            report.bucketsCompared += step.bucketsCompared
            report.bucketsDiffering += step.bucketsDiffering
            if let reason = step.bucketLevelSkipped { report.bucketLevelSkipped = reason }
            report.rowsFetched += step.rowsFetched
            report.noteFetched("buckets", rows: step.rowsFetched - step.userRowsFetched)
            report.noteFetched("users", rows: step.userRowsFetched)
            report.userRowsFetched += step.userRowsFetched
            report.userDaysCompared += step.compared
            pending.addSums(on: day, step.corrections, local: step.local, home: step.home)
            logger.info("reconciliation: day \(DayCalendar.isoDate(day)) (\(index + 1)/\(differing.count)): \(step.bucketsDiffering) of \(step.bucketsCompared) user buckets differ, \(step.rowsFetched) rows fetched, \(step.corrections.count) users differ")
        }
    }

    private struct DayStep: Sendable {
        var bucketsCompared = 0
        var bucketsDiffering = 0
        var bucketLevelSkipped: String?
        var rowsFetched = 0
        var userRowsFetched = 0
        var compared = 0
        var local: [String: DayAggregate] = [:]
        var home: [String: Int32] = [:]
        /// Users whose sums differ, with the warehouse's.
        var corrections: [String: DayAggregate] = [:]
    }

    /// One differing day: bucket totals, then the user rows of the differing buckets (all of
    /// the day's when most differ, as in a backfill), then the corrections.
    private func reconcile(day: DayNumber, warehouseBuckets: Task<[String: DayTotals], Error>, warehouse: any Warehouse,
                           readers: [Int32: PartitionReads]) async throws -> DayStep {
        var step = DayStep()
        var localBuckets: [String: DayTotals] = [:]
        var computed: [Int32: (totals: [String: DayTotals], version: Int64)] = [:]
        for (partition, local) in try Self.perPartition(readers, { _, reader in try reader.bucketTotals(on: day, bucketOf: UserBucket.of(utf8:)) }) {
            localBuckets.merge(local.totals) { $0 + $1 }
            if !local.cached { computed[partition] = (local.totals, local.version) }
        }
        // Kept for the next run (and kept valid by this run's corrections).
        if !computed.isEmpty {
            let fresh = computed
            try await access.withStores { session in
                for (partition, local) in fresh { try session.stores[partition]?.cacheBucketTotals(local.totals, of: day, version: local.version) }
            }
        }
        let iso = DayCalendar.isoDate(day)
        var differing: Set<String>? = nil
        do {
            let warehouseBuckets = try await warehouseBuckets.value
            step.rowsFetched += warehouseBuckets.count
            let allBuckets = Set(localBuckets.keys).union(warehouseBuckets.keys)
            let changed = allBuckets.filter { (localBuckets[$0] ?? DayTotals()) != (warehouseBuckets[$0] ?? DayTotals()) }
            step.bucketsCompared = allBuckets.count
            step.bucketsDiffering = changed.count
            guard !changed.isEmpty else { return step }
            // Most buckets differ (a backfill): the whole day in one query.
            differing = changed.count * 2 > allBuckets.count ? nil : changed
        } catch let unavailable as BucketsUnavailable {
            // Still only the differing days' rows, never the table.
            step.bucketLevelSkipped = unavailable.reason
        }
        // The warehouse's rows and the local ones of the differing buckets (all of the day's
        // without buckets), read at the same time.
        let wanted = differing
        let sortedBuckets = wanted?.sorted()
        async let fetched = warehouse.userDays(on: iso, buckets: sortedBuckets)
        for (partition, rows) in try Self.perPartition(readers, { _, reader in
            try wanted.map { try reader.userDays(on: day, inBuckets: $0, bucketOf: UserBucket.of(utf8:)) } ?? reader.userDays(on: day)
        }) {
            for (user, sums) in rows {
                step.local[user] = sums
                step.home[user] = partition
            }
        }
        let rows = try await fetched
        step.rowsFetched += rows.count
        step.userRowsFetched = rows.count
        step.compared = Set(step.local.keys).union(rows.keys).count
        step.corrections = ReconciliationDiff.corrections(local: step.local, warehouse: rows)
        return step
    }

    /// `body` for every partition, two at a time (each reader has its own connection): these
    /// local scans are the run's own CPU work.
    static func perPartition<T>(_ readers: [Int32: PartitionReads], _ body: @escaping @Sendable (Int32, PartitionReads) throws -> T) throws -> [Int32: T] {
        let entries = Array(readers)
        let results = PartitionResults<T>(count: entries.count)
        DispatchQueue.concurrentPerform(iterations: min(2, entries.count)) { worker in
            for index in stride(from: worker, to: entries.count, by: 2) {
                results.set(index, Result { try body(entries[index].key, entries[index].value) })
            }
        }
        var output: [Int32: T] = [:]
        for (index, entry) in entries.enumerated() { output[entry.key] = try results.get(index) }
        return output
    }

    /// One user's values from the warehouse: some days' sums, metric day totals, or a sign-up time.
    /// Where corrected users live, and the one write per partition.
    struct Placement: Sendable {
        let partitioner: Partitioner
        let count: Int
        let now: Instant

        /// Takes `values` per user in the partition that holds them (`home`, else a search,
        /// else where the partitioner sends their events), one transaction per partition.
        /// Users of partitions this instance does not own are skipped.
        /// - Returns: the users written, and the membership changes published.
        func take<Value>(session: StoreSession, home: [String: Int32], values: [String: Value],
                         _ convert: (Value) -> UserCorrection) throws -> (written: [String: Value], changes: Int) {
            var byPartition: [Int32: [String: UserCorrection]] = [:]
            var written: [String: Value] = [:]
            for (user, value) in values {
                guard let partition = try home[user] ?? place(user, in: session.stores) else { continue }
                byPartition[partition, default: [:]][user] = convert(value)
                written[user] = value
            }
            var changes = 0
            for (partition, users) in byPartition {
                let outcome = try session.stores[partition]!.takeWarehouseValues(users, now: session.now ?? now, bucketOf: UserBucket.of(_:))
                session.note(outcome)
                changes += outcome.membershipChanges
            }
            return (written, changes)
        }

        /// The partition that holds `user`'s state, or where the partitioner sends their events;
        /// nil if that partition is owned by another instance.
        func place(_ user: String, in stores: [Int32: PartitionStore]) throws -> Int32? {
            let expected = partitioner.partition(of: user, count: max(count, 1))
            if let store = stores[expected], try store.profile(of: user) != nil { return expected }
            for (partition, store) in stores where partition != expected {
                if try store.profile(of: user) != nil { return partition }
            }
            return stores[expected] == nil ? nil : expected
        }
    }

    private func reconcileSignups(warehouse: any Warehouse, readers: [Int32: PartitionReads], report: inout ReconciliationReport,
                                  into pending: inout PendingCorrections) async throws {
        guard config.queries.signups != nil else { return }
        let local = try readers.values.reduce(into: [String: Int64]()) { $0.merge(try $1.signupSeconds()) { min($0, $1) } }
        let warehouseBuckets = try await warehouse.signupBuckets()
        report.noteFetched("sign-up buckets", rows: warehouseBuckets.count)
        let differing = ReconciliationDiff.differingSignupBuckets(local: SignupBucket.buckets(local), warehouse: warehouseBuckets)
        report.signupBucketsDiffering = differing.count
        var corrections: [String: Int64] = [:]
        for bucket in differing {
            let rows = try await warehouse.signups(inBucket: bucket)
            report.rowsFetched += rows.count
            report.noteFetched("sign-ups", rows: rows.count)
            corrections.merge(ReconciliationDiff.signupCorrections(local: local, warehouse: rows)) { $1 }
        }
        pending.addSignups(corrections)
    }

    private func log(_ report: ReconciliationReport) {
        switch report.status {
        case .failed: logger.error("reconciliation failed: \(report.error ?? "?")")
        default: logger.info("reconciliation \(report.status.rawValue): \(report.summary)")
        }
    }
}

extension ReconciliationReport {
    /// One line for logs and the CLI.
    public var summary: String {
        var parts = ["days \(fromDay) … \(throughDay): \(daysCompared) compared, \(daysDiffering.count) differing",
                     bucketLevelSkipped.map { "user buckets skipped (\($0)): differing days compared by all their user rows" }
                         ?? "user buckets \(bucketsCompared) compared, \(bucketsDiffering) differing",
                     "user-days \(userDaysCompared) compared, \(userDaysCorrected) corrected",
                     "sign-ups \(signupsCorrected) corrected", "rows fetched \(rowsFetched) (\(userRowsFetched) user rows)",
                     "membership changes \(membershipChanges)",
                     "drift: spend \(Self.money(spendCents.absolute))\(Self.percent(spendCents)), activities \(activities.absolute)\(Self.percent(activities)), "
                         + "active time \(activeMicros.absolute / 1_000_000) s\(Self.percent(activeMicros))"]
        if let metrics { parts.append(metrics.summary) }
        if let durationSeconds { parts.append(String(format: "%.2f s", durationSeconds)) }
        if attempt > 1, let first = firstAttemptStartedAt, let finishedAt {
            parts.append(String(format: "attempt %d, %.1f s since the first", attempt, Double(finishedAt.nanoseconds - first.nanoseconds) / 1e9))
        }
        if retryable == false { parts.append("not retried: trying again cannot change this answer") }
        if let error { parts.append("error: \(error)") }
        return parts.joined(separator: "; ")
    }

    static func money(_ cents: Int64) -> String { String(format: "%@%lld.%02lld", cents < 0 ? "-" : "", abs(cents) / 100, abs(cents) % 100) }
    static func percent(_ drift: Drift) -> String { drift.relative.map { String(format: " (%.3f%%)", $0 * 100) } ?? "" }
}

/// Results written by concurrent workers, one slot each.
final class PartitionResults<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<T, Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ result: Result<T, Error>) { lock.withLock { slots[index] = result } }

    func get(_ index: Int) throws -> T { try lock.withLock { slots[index] }!.get() }
}
