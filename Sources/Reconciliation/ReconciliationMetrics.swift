import Metrics
import SegmenterCore

/// Reconciliation on `/metrics`: runs by status, and the last run's findings.
enum ReconciliationMetrics {
    static func record(_ report: ReconciliationReport) {
        Counter(label: "segmenter_reconciliation_runs_total", dimensions: [("status", report.status.rawValue)]).increment()
        guard report.status == .succeeded else { return }
        Gauge(label: "segmenter_reconciliation_last_success_timestamp_seconds").record(Double(report.finishedAt?.epochSeconds ?? 0))
        Gauge(label: "segmenter_reconciliation_last_duration_seconds").record(report.durationSeconds ?? 0)
        Gauge(label: "segmenter_reconciliation_last_days_differing").record(report.daysDiffering.count)
        Gauge(label: "segmenter_reconciliation_last_users_corrected").record(report.userDaysCorrected + report.signupsCorrected)
        Gauge(label: "segmenter_reconciliation_last_rows_fetched").record(report.rowsFetched)
        for (feature, drift) in [("spend_cents", report.spendCents), ("activities", report.activities), ("active_microseconds", report.activeMicros)] {
            Gauge(label: "segmenter_reconciliation_last_drift_absolute", dimensions: [("feature", feature)]).record(drift.absolute)
            Gauge(label: "segmenter_reconciliation_last_drift_relative", dimensions: [("feature", feature)]).record(drift.relative ?? 0)
        }
    }
}
