import SegmenterCore
import SegmenterStore

/// What one run takes from the warehouse, gathered over all of its levels (day sums, metrics,
/// sign-ups) and written at the end, one transaction per partition: the run's membership
/// changes and KPI deltas then move in one step, not in one per differing day (issue 25: a slow
/// BigQuery run published 110 intermediate KPI deltas).
struct PendingCorrections {
    /// Per user, everything the warehouse says differs.
    var values: [String: UserCorrection] = [:]
    /// The partition that holds a user's rows, where a level read them.
    var home: [String: Int32] = [:]
    /// The local sums a correction replaces, for the report's drift.
    var localSums: [String: [DayNumber: DayAggregate]] = [:]
    /// Per user, the absolute difference of their corrected metric values, in millionths.
    var metricDrift: [String: Int64] = [:]

    var isEmpty: Bool { values.isEmpty }

    mutating func addSums(on day: DayNumber, _ corrections: [String: DayAggregate], local: [String: DayAggregate], home: [String: Int32]) {
        for (user, truth) in corrections {
            values[user, default: UserCorrection()].days[day] = truth
            localSums[user, default: [:]][day] = local[user] ?? DayAggregate()
            if let partition = home[user] { self.home[user] = partition }
        }
    }

    mutating func addMetrics(_ corrections: [String: [MetricDayCorrection]], drift: [String: Int64], home: [String: Int32]) {
        for (user, list) in corrections {
            values[user, default: UserCorrection()].metrics += list
            metricDrift[user, default: 0] += drift[user] ?? 0
            if let partition = home[user] { self.home[user] = partition }
        }
    }

    mutating func addSignups(_ signups: [String: Int64]) {
        for (user, seconds) in signups { values[user, default: UserCorrection()].signup = Instant(seconds: seconds) }
    }
}

extension Reconciler {
    /// Writes `pending` (users of partitions this instance does not own are left to theirs) and
    /// counts in the report what was written.
    func apply(_ pending: PendingCorrections, now: Instant, report: inout ReconciliationReport) async throws {
        guard !pending.isEmpty else { return }
        let placement = Placement(partitioner: config.partitioner, count: partitionCount, now: now)
        let (home, values) = (pending.home, pending.values)
        let (written, changes) = try await access.withStores { session in
            try placement.take(session: session, home: home, values: values) { $0 }
        }
        report.membershipChanges += changes
        for (user, taken) in written {
            for (day, truth) in taken.days {
                report.userDaysCorrected += 1
                report.noteCorrection(local: pending.localSums[user]?[day] ?? DayAggregate(), warehouse: truth)
            }
            if taken.signup != nil { report.signupsCorrected += 1 }
            if !taken.metrics.isEmpty {
                report.metrics?.userValuesCorrected += taken.metrics.count
                report.metrics?.drift.absolute += pending.metricDrift[user] ?? 0
            }
        }
        logger.info("reconciliation: \(written.count) users corrected in one step, \(changes) membership changes")
    }
}
