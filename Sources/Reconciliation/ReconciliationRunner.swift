import Foundation
import Logging
import ServiceRuntime
import SegmenterCore
import SegmenterStore
import ServiceConfig
import Ingest

/// Reconciliation inside `run`: the scheduler starts once the commit thread runs (its store
/// access and partition count are known); until then an on-demand request fails politely.
public final class ReconciliationRunner: @unchecked Sendable {
    private let config: SegmenterConfig
    private let settings: ReconciliationConfig
    private let logger: Logger
    private let lock = NSLock()
    private var scheduler: ReconcileScheduler?
    private var loop: Task<Void, Never>?

    private let clock: any ServiceClock

    /// nil when the config has no `reconciliation:`.
    public init?(config: SegmenterConfig, logger: Logger, clock: any ServiceClock = SystemClock()) {
        guard let settings = config.reconciliation else { return nil }
        self.config = config
        self.clock = clock
        self.settings = settings
        self.logger = logger.component("reconciliation")
    }

    public func start(access: any StoreAccess, partitionCount: Int) {
        do {
            let history = try ReconciliationHistory(directory: config.stateDirectory)
            let reconciler = Reconciler(config: settings, calendar: config.calendar, access: access, partitionCount: partitionCount,
                                        history: history, logger: logger, clock: clock)
            let scheduler = ReconcileScheduler(reconciler: reconciler, logger: logger, clock: clock)
            lock.withLock {
                self.scheduler = scheduler
                loop = Task { await scheduler.loop() }
            }
        } catch {
            logger.error("reconciliation disabled: cannot open its history in \(config.stateDirectory.path): \(error)")
        }
    }

    public func runNow() async -> ReconciliationReport {
        guard let scheduler = lock.withLock({ scheduler }) else {
            let now = clock.wallNow
            return .failed(kind: .once, reason: "the service is still starting (no partitions yet)", startedAt: now, finishedAt: now)
        }
        return await scheduler.runNow(kind: .once)
    }

    /// `POST /api/reconciliation/run`.
    public var httpHandler: @Sendable () async -> ReconciliationReport { { await self.runNow() } }

    public func stop() { lock.withLock { loop?.cancel() } }
}
