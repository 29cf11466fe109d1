import Foundation
import Logging
import SegmenterCore
import SegmenterStore
import Warehouse
import ServiceRuntime

/// Runs reconciliation on its schedule and on demand, one run at a time; a failed run is retried
/// with exponential backoff. Every attempt is recorded in the history with its cause.
public actor ReconcileScheduler {
    private let reconciler: Reconciler
    private let logger: Logger
    private let clock: any ServiceClock
    private var current: Task<ReconciliationReport, Never>?

    /// - Parameter clock: the schedule's wall clock and its sleeps (tests pass a `ManualClock`).
    public init(reconciler: Reconciler, logger: Logger, clock: any ServiceClock = SystemClock()) {
        self.reconciler = reconciler
        self.logger = logger.component("reconciliation")
        self.clock = clock
    }

    /// Runs now, or joins the run in progress (one at a time).
    public func runNow(kind: ReconciliationReport.Kind, from: DayNumber? = nil) async -> ReconciliationReport {
        if let current { return await current.value }
        let task = Task { [clock] in await Self.runWithRetries(reconciler, kind: kind, from: from, logger: logger, clock: clock) }
        current = task
        let report = await task.value
        current = nil
        return report
    }

    /// Waits for each scheduled instant (wall clock) and runs; returns when cancelled.
    public func loop() async {
        guard let schedule = reconciler.config.schedule else { return }
        while !Task.isCancelled {
            let next = schedule.next(after: clock.wallNow, timeZone: reconciler.calendar.timeZone)
            logger.info("next reconciliation at \(next)")
            do { try await clock.sleep(until: next) } catch { return }
            _ = await runNow(kind: .scheduled)
        }
    }

    private static func runWithRetries(_ reconciler: Reconciler, kind: ReconciliationReport.Kind, from: DayNumber?,
                                       logger: Logger, clock: any ServiceClock) async -> ReconciliationReport {
        var backoff = reconciler.config.retryBackoffSeconds
        var attempt = 1
        let firstStarted = clock.wallNow
        while true {
            var report: ReconciliationReport
            do {
                let warehouse = try reconciler.config.makeWarehouse(clock: clock)
                report = await reconciler.run(kind: kind, from: from, warehouse: warehouse, attempt: attempt)
                await warehouse.shutdown()
            } catch {
                let now = clock.wallNow
                var failed = ReconciliationReport.failed(kind: kind, attempt: attempt, reason: String(describing: error), startedAt: now, finishedAt: now)
                failed.retryable = (error as? WarehouseError)?.retryable ?? false  // the warehouse could not even be set up
                _ = try? reconciler.history.insert(failed)
                report = failed
                logger.error("reconciliation failed: \(error)")
            }
            if attempt > 1 { report.firstAttemptStartedAt = firstStarted }
            ReconciliationMetrics.record(report)
            guard report.status == .failed, report.retryable != false, attempt <= reconciler.config.retries, !Task.isCancelled else { return report }
            logger.warning("reconciliation attempt \(attempt) of \(reconciler.config.retries + 1) failed (\(report.error ?? "?")); retrying in \(backoff) s")
            do { try await clock.sleep(until: clock.wallNow.adding(seconds: Int64(backoff))) } catch { return report }
            backoff *= 2
            attempt += 1
        }
    }
}
