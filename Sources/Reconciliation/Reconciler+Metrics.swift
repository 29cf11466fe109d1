import SegmenterCore
import SegmenterStore
import Warehouse

/// `metrics_sql` (SPEC §4b): per day and metric totals first, then, for each differing day,
/// the user values of its differing metrics only. Counts and sums take the warehouse's value
/// (and their days are frozen like the built-in sums); `count_distinct` and sequences are
/// compared and reported (see `MetricReconciliation`).
extension Reconciler {
    func reconcileMetrics(_ days: ClosedRange<DayNumber>, warehouse: any Warehouse, readers: [Int32: PartitionReads],
                          report: inout ReconciliationReport, into pending: inout PendingCorrections) async throws {
        guard config.queries.metrics != nil else { return }
        let catalog = try await metricCatalog()
        var summary = MetricReconciliationSummary()
        defer { report.metrics = summary }
        let byName = Dictionary(uniqueKeysWithValues: catalog.metrics.map { ($0.name, $0) })
        let definitions = Dictionary(uniqueKeysWithValues: catalog.metrics.map { ($0.key, $0) })

        // Level 1: per day and metric, in millionths on both sides.
        var local: [DayNumber: [String: MetricDayTotals]] = [:]
        for perPartition in try Self.perPartition(readers, { _, reader in try reader.metricDayTotals(in: days) }).values {
            for (day, byMetric) in perPartition {
                for (key, raw) in byMetric {
                    guard let metric = definitions[key] else { continue }  // state of a metric no longer defined
                    let unit = MetricReconciliation.millionthsPerUnit(metric.shape)
                    let totals = MetricDayTotals(users: raw.users, millionths: raw.millionths &* unit)
                    local[day, default: [:]][metric.name, default: MetricDayTotals()] = local[day]?[metric.name].map { $0 + totals } ?? totals
                }
            }
        }
        var truth: [DayNumber: [String: MetricDayTotals]] = [:]
        var unknown: Set<String> = []
        let fetched = try await warehouse.metricDayTotals(from: DayCalendar.isoDate(days.lowerBound), through: DayCalendar.isoDate(days.upperBound))
        for (text, byMetric) in fetched {
            guard let day = DayCalendar.dayNumber(isoDate: text) else { throw WarehouseError(step: "per-day metric totals", message: "bad day \(text)") }
            report.rowsFetched += byMetric.count
            report.noteFetched("metric days", rows: byMetric.count)
            for (name, totals) in byMetric {
                guard let metric = byName[name] else {
                    unknown.insert(name)
                    continue
                }
                truth[day, default: [:]][name] = totals
                if MetricReconciliation.isCorrected(metric.shape) { summary.drift.warehouseTotal += totals.millionths }
            }
        }
        summary.unknownMetrics = unknown.sorted()
        // A metric without a single row in the compared days is not one metrics_sql covers.
        let covered = Set(truth.values.flatMap(\.keys))
        summary.notInWarehouse = byName.keys.filter { !covered.contains($0) }.sorted()
        summary.dayMetricsCompared = days.count * covered.count
        let differing = MetricReconciliation.differing(local: local, warehouse: truth, in: days, metrics: covered)
        summary.dayMetricsDiffering = differing.sorted { $0.key < $1.key }.flatMap { day, names in names.map { "\(DayCalendar.isoDate(day)) \($0)" } }

        // Level 2: the differing day's users, for its differing metrics only.
        for (day, names) in differing.sorted(by: { $0.key < $1.key }) {
            let metrics = names.compactMap { byName[$0] }
            let keys = metrics.map(\.key)
            async let fetchedValues = warehouse.metricValues(on: DayCalendar.isoDate(day), metrics: names)
            var localValues: [String: [String: Int64]] = [:]
            var home: [String: Int32] = [:]
            for (partition, rows) in try Self.perPartition(readers, { _, reader in try reader.metricValues(on: day, keys: keys) }) {
                for (user, values) in rows {
                    home[user] = partition
                    for (key, raw) in values {
                        guard let metric = definitions[key] else { continue }
                        localValues[user, default: [:]][metric.name] = raw &* MetricReconciliation.millionthsPerUnit(metric.shape)
                    }
                }
            }
            let warehouseValues = try await fetchedValues
            let rowCount = warehouseValues.values.reduce(0) { $0 + $1.count }
            report.rowsFetched += rowCount
            report.noteFetched("metric values", rows: rowCount)
            var corrections: [String: [MetricDayCorrection]] = [:]
            var drift: [String: Int64] = [:]
            for metric in metrics {
                let mine = localValues.compactMapValues { $0[metric.name] }
                let theirs = warehouseValues.compactMapValues { $0[metric.name] }
                summary.userValuesCompared += Set(mine.keys).union(theirs.keys).count
                let users = MetricReconciliation.differingUsers(local: mine, warehouse: theirs)
                guard MetricReconciliation.isCorrected(metric.shape) else {
                    if !users.isEmpty { summary.differingNotCorrected[metric.name, default: 0] += users.count }
                    continue
                }
                for (user, value) in users {
                    corrections[user, default: []].append(MetricDayCorrection(
                        day: day, key: metric.key, total: MetricReconciliation.storedTotal(millionths: value, shape: metric.shape)))
                    drift[user, default: 0] += abs(value - (mine[user] ?? 0))
                }
            }
            pending.addMetrics(corrections, drift: drift, home: home)
            logger.info("reconciliation: metrics of \(DayCalendar.isoDate(day)) (\(names.joined(separator: ", "))): \(corrections.count) users differ")
        }
    }

    /// The metrics the stores were opened with.
    func metricCatalog() async throws -> MetricCatalog {
        try await access.withStores { $0.stores.values.first?.segments.catalog.metrics } ?? MetricCatalog()
    }

    /// Whether some metric takes the warehouse's values (its days are then frozen once compared).
    func catalogCorrectsMetrics(_ catalog: MetricCatalog) -> Bool {
        catalog.metrics.contains { MetricReconciliation.isCorrected($0.shape) }
    }
}
