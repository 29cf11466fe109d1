import Foundation
import Logging
import Testing
import SegmenterTestKit
@testable import SegmenterCore
@testable import SegmenterService
@testable import ServiceConfig
@testable import ServiceRuntime
@testable import Ingest
@testable import Reconciliation
@testable import SegmenterStore
import Warehouse

/// The scheduler: runs on its schedule, one at a time, and retries a failed run with every
/// attempt recorded.
@Suite struct SchedulerTests {
    func scheduler(_ world: ReconciliationTests.World, path: String, queries: WarehouseQueries, clock: any ServiceClock = SystemClock(),
                   target: ReconciliationConfig.Target? = nil, configure: (inout ReconciliationConfig) -> Void) throws -> ReconcileScheduler {
        var settings = ReconciliationConfig(target: target ?? .sqlite(path: path), queries: queries)
        settings.lookbackDays = 30
        configure(&settings)
        let reconciler = Reconciler(config: settings, calendar: .utc, access: world.access, partitionCount: DriftScenario.partitions,
                                    history: try ReconciliationHistory(directory: world.directory), logger: Logger(label: "test"))
        return ReconcileScheduler(reconciler: reconciler, logger: Logger(label: "test"), clock: clock)
    }

    /// A missing table answers the same every time: one attempt, said so (issue 25: the default
    /// retries made `reconcile --once` wait 210 s in silence for it).
    @Test func aFailureNoRetryCanFixIsNotRetried() async throws {
        let scenario = DriftScenario(seed: 3, users: 30)
        let world = try ReconciliationTests.World(events: scenario.stream)
        let path = try SQLiteWarehouseFixture.create(WarehouseRows(scenario.truth), in: FileManager.default.temporaryDirectory)
        let broken = WarehouseQueries(daily: "SELECT user_id, day, spend, activities, active_seconds FROM missing_table")
        let scheduler = try scheduler(world, path: path, queries: broken) {
            $0.retries = 2
            $0.retryBackoffSeconds = 0
        }
        let report = await scheduler.runNow(kind: .once)
        #expect(report.status == .failed && report.attempt == 1 && report.retryable == false)
        #expect(report.summary.contains("not retried"), "\(report.summary)")
        let history = try ReconciliationHistory(directory: world.directory, readOnly: true).recent()
        #expect(history.map(\.attempt) == [1] && history[0].error?.contains("missing_table") == true)
    }

    /// An unreachable server may answer later: retried, every attempt recorded, and the last
    /// report says how long the whole run took.
    @Test func anUnreachableWarehouseIsRetriedAndEveryAttemptRecorded() async throws {
        let scenario = DriftScenario(seed: 3, users: 30)
        let world = try ReconciliationTests.World(events: scenario.stream)
        var settings = PostgresSettings(host: "127.0.0.1", port: 1, database: "postgres", user: "postgres", password: nil, tls: .disable)
        settings.connectTimeoutSeconds = 2
        let scheduler = try scheduler(world, path: "", queries: SQLiteWarehouseFixture.queries, target: .postgres(settings)) {
            $0.retries = 2
            $0.retryBackoffSeconds = 0
        }
        let report = await scheduler.runNow(kind: .once)
        #expect(report.status == .failed && report.attempt == 3 && report.retryable == true, "\(report.summary)")
        #expect(report.firstAttemptStartedAt != nil && report.summary.contains("attempt 3,"), "\(report.summary)")
        let history = try ReconciliationHistory(directory: world.directory, readOnly: true).recent()
        #expect(history.map(\.attempt) == [3, 2, 1] && history.allSatisfy { $0.status == .failed && $0.error?.contains("per-day totals") == true })
    }

    @Test func runsOnItsScheduleOneAtATime() async throws {
        let scenario = DriftScenario(seed: 4, users: 30)
        let world = try ReconciliationTests.World(events: scenario.stream)
        let path = try SQLiteWarehouseFixture.create(WarehouseRows(scenario.truth), in: FileManager.default.temporaryDirectory)
        let clock = ManualClock(wall: Instant(seconds: 1_795_000_000))
        let scheduler = try scheduler(world, path: path, queries: SQLiteWarehouseFixture.queries, clock: clock) { $0.schedule = .every(seconds: 3600) }

        // Two requests at once share one run.
        async let first = scheduler.runNow(kind: .once)
        async let second = scheduler.runNow(kind: .once)
        let (a, b) = await (first, second)
        #expect(a == b && a.status == .succeeded && a.userDaysCorrected > 0)

        // Hourly: nothing runs until the clock passes the hour, then one scheduled run does.
        func scheduledRuns() throws -> [ReconciliationReport] {
            try ReconciliationHistory(directory: world.directory, readOnly: true).recent().filter { $0.kind == .scheduled }
        }
        let loop = Task { await scheduler.loop() }
        let deadline = ContinuousClock.now + .seconds(30)
        while clock.sleeping == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try scheduledRuns().isEmpty)
        clock.advance(by: .seconds(3600))
        while try scheduledRuns().isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        loop.cancel()
        await loop.value
        let history = try ReconciliationHistory(directory: world.directory, readOnly: true).recent()
        let scheduled = try scheduledRuns()
        #expect(history.filter { $0.kind == .once }.count == 1)
        #expect(scheduled.count == 1 && scheduled.allSatisfy { $0.status == .succeeded && $0.userDaysCorrected == 0 }, "\(history.map(\.kind))")
    }
}
