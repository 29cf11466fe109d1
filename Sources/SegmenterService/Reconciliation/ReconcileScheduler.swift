import Foundation
import Logging
import SegmenterCore
import SegmenterStore
import Warehouse

/// Runs reconciliation on its schedule and on demand, one run at a time; a failed run is retried
/// with exponential backoff. Every attempt is recorded in the history with its cause.
public actor ReconcileScheduler {
    private let reconciler: Reconciler
    private let logger: Logger
    private var current: Task<ReconciliationReport, Never>?

    public init(reconciler: Reconciler, logger: Logger) {
        self.reconciler = reconciler
        self.logger = logger
    }

    /// Runs now, or joins the run in progress (one at a time).
    public func runNow(kind: ReconciliationReport.Kind, from: DayNumber? = nil) async -> ReconciliationReport {
        if let current { return await current.value }
        let task = Task { await Self.runWithRetries(reconciler, kind: kind, from: from, logger: logger) }
        current = task
        let report = await task.value
        current = nil
        return report
    }

    /// Waits for each scheduled instant (wall clock) and runs; returns when cancelled.
    public func loop() async {
        guard let schedule = reconciler.config.schedule else { return }
        while !Task.isCancelled {
            let wall = Instant.wallClock()
            let next = schedule.next(after: wall, timeZone: reconciler.calendar.timeZone)
            logger.info("next reconciliation at \(next)")
            do { try await Task.sleep(for: .nanoseconds(next.nanoseconds - wall.nanoseconds)) } catch { return }
            _ = await runNow(kind: .scheduled)
        }
    }

    private static func runWithRetries(_ reconciler: Reconciler, kind: ReconciliationReport.Kind, from: DayNumber?,
                                       logger: Logger) async -> ReconciliationReport {
        var backoff = reconciler.config.retryBackoffSeconds
        var attempt = 1
        while true {
            let report: ReconciliationReport
            do {
                let warehouse = try reconciler.config.makeWarehouse()
                report = await reconciler.run(kind: kind, from: from, warehouse: warehouse, attempt: attempt)
                await warehouse.shutdown()
            } catch {
                let now = Instant.wallClock()
                let failed = ReconciliationReport.failed(kind: kind, attempt: attempt, reason: String(describing: error), startedAt: now, finishedAt: now)
                _ = try? reconciler.history.insert(failed)
                report = failed
                logger.error("reconciliation failed: \(error)")
            }
            ReconciliationMetrics.record(report)
            guard report.status == .failed, attempt <= reconciler.config.retries, !Task.isCancelled else { return report }
            logger.warning("reconciliation attempt \(attempt) failed; retrying in \(backoff) s")
            do { try await Task.sleep(for: .seconds(backoff)) } catch { return report }
            backoff *= 2
            attempt += 1
        }
    }
}
