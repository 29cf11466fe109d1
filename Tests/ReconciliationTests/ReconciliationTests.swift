import Foundation
import Logging
import Testing
@testable import SegmenterCore
@testable import SegmenterService
@testable import ServiceConfig
@testable import ServiceRuntime
@testable import Ingest
@testable import Reconciliation
@testable import SegmenterStore
@testable import Warehouse

/// Reconciliation against real warehouses (a SQLite file; the PostgreSQL server scripts/test
/// starts): seeded drift is found and repaired exactly, a second run finds nothing, late
/// stream events are not counted twice, and a failing warehouse changes nothing.
@Suite(.serialized) struct ReconciliationTests {
    let scenario = DriftScenario(seed: 7)

    /// A state directory holding what the stream delivered.
    struct World {
        let directory: URL
        let config: SegmenterConfig
        let access: DirectStoreAccess
        var offsets: [Int32: Int64] = [:]

        init(events: [UserEvent], catalog: SegmentCatalog = DriftScenario.catalog) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("recon-\(UUID().uuidString)")
            var config = SegmenterConfig()
            config.stateDirectory = directory
            config.catalog = catalog
            self.config = config
            access = try DirectStoreAccess(config: config, partitionCount: DriftScenario.partitions)
            _ = try DriftScenario.apply(events, to: access.stores, offsets: &offsets)
        }

        func reconciler(_ target: ReconciliationConfig.Target, _ queries: WarehouseQueries) throws -> Reconciler {
            var settings = ReconciliationConfig(target: target, queries: queries)
            settings.lookbackDays = 30
            return Reconciler(config: settings, calendar: .utc, access: access, partitionCount: DriftScenario.partitions,
                              history: try ReconciliationHistory(directory: directory), logger: Logger(label: "test"))
        }

        func userDays() throws -> [String: [DayNumber: DayAggregate]] {
            var result: [String: [DayNumber: DayAggregate]] = [:]
            for store in access.stores.values {
                for day in DriftScenario.base.epochSeconds / 86_400 ..< DriftScenario.end.epochSeconds / 86_400 + 1 {
                    for (user, sums) in try store.reads.userDays(on: DayNumber(day)) { result[user, default: [:]][DayNumber(day)] = sums }
                }
            }
            return result
        }

        func membershipsAndKPIs() throws -> ([String: Set<String>], [KPIKey: Double?]) {
            let reader = try StateReader(directory: directory)
            let partials = try reader.kpiPartials()
            return (try reader.allMemberships(), Dictionary(uniqueKeysWithValues: config.catalog.kpiKeys.map { ($0, config.catalog.value(of: $0, in: partials)) }))
        }

        /// Membership rows in the outboxes published with `cause`.
        func outboxMemberships(cause: String) throws -> Int {
            try access.stores.values.reduce(0) { total, store in
                total + (try store.outbox(after: 0, limit: 1_000_000)).filter {
                    String(decoding: $0.value, as: UTF8.self).contains("\"cause\":\"\(cause)\"")
                }.count
            }
        }
    }

    /// What the report must say, from the scenario itself.
    struct Expected {
        var days: Set<String> = []
        var driftedUsers: [String: [String]] = [:]
        var userDays = 0
        var spend: Int64 = 0, activities: Int64 = 0, micros: Int64 = 0

        init(_ scenario: DriftScenario) {
            let truth = DriftScenario.daily(scenario.truth), stream = DriftScenario.daily(scenario.stream)
            for user in Set(truth.keys).union(stream.keys) {
                for day in Set((truth[user] ?? [:]).keys).union((stream[user] ?? [:]).keys) {
                    let t = truth[user]?[day] ?? DayAggregate(), s = stream[user]?[day] ?? DayAggregate()
                    guard t != s else { continue }
                    days.insert(DayCalendar.isoDate(day))
                    driftedUsers[DayCalendar.isoDate(day), default: []].append(user)
                    userDays += 1
                    spend += abs(t.spendCents - s.spendCents)
                    activities += abs(t.activities - s.activities)
                    micros += abs(t.activeMicros - s.activeMicros)
                }
            }
        }
    }

    /// The shared check: one run repairs everything and reports it exactly; a second finds nothing.
    /// - Parameter bucketLevel: false for a server that cannot hash user ids: a differing day
    ///   is then compared by all of its user rows, and the report says why.
    func verifyRepair(target: ReconciliationConfig.Target, queries: WarehouseQueries, bucketLevel: Bool = true,
                      warehouse: () throws -> any Warehouse) async throws {
        let world = try World(events: scenario.stream)
        let reconciler = try world.reconciler(target, queries)
        #expect(try world.userDays() == DriftScenario.daily(scenario.stream))

        let first = await reconciler.run(kind: .once, warehouse: try warehouse())
        #expect(first.status == .succeeded, "\(first.error ?? "")")
        let expected = Expected(scenario)
        #expect(Set(first.daysDiffering) == expected.days)
        #expect(first.daysCompared == 30)
        #expect(first.userDaysCorrected == expected.userDays)
        #expect(first.spendCents.absolute == expected.spend)
        #expect(first.activities.absolute == expected.activities)
        #expect(first.activeMicros.absolute == expected.micros)
        #expect(first.signupsCorrected == 1)
        #expect(first.signupBucketsDiffering == 2)
        // Fetched: the day totals, the bucket totals of the differing days, and only the user rows
        // of buckets holding a drifted user-day, not the table.
        let truthDaily = DriftScenario.daily(scenario.truth)
        var expectedRows = DriftScenario.dayCount
        for day in expected.days {
            let number = DayCalendar.dayNumber(isoDate: day)!
            let users = truthDaily.filter { $0.value[number] != nil }.map(\.key)
            guard bucketLevel else {
                expectedRows += users.count
                continue
            }
            expectedRows += Set(users.map(UserBucket.of)).count
            let drifted = Set(expected.driftedUsers[day]!.map(UserBucket.of))
            expectedRows += users.filter { drifted.contains(UserBucket.of($0)) }.count
        }
        #expect((first.bucketLevelSkipped == nil) == bucketLevel, "\(first.bucketLevelSkipped ?? "")")
        let truthSignups = DriftScenario.signups(scenario.truth), streamSignups = DriftScenario.signups(scenario.stream)
        let buckets = Set([truthSignups, streamSignups].map { SignupBucket.bucket(ofEpochSeconds: $0[DriftScenario.wrongSignupUser]!) })
        expectedRows += truthSignups.values.filter { buckets.contains(SignupBucket.bucket(ofEpochSeconds: $0)) }.count
        #expect(first.rowsFetched == expectedRows)
        let allRows = truthDaily.values.reduce(0) { $0 + $1.count }
        #expect(first.rowsFetched - DriftScenario.dayCount < allRows / 4, "fetched \(first.rowsFetched) of \(allRows) rows")

        // Local state now equals the warehouse for the closed days.
        #expect(try world.userDays() == DriftScenario.daily(scenario.truth))
        let signup = try world.access.stores.values.compactMap { try $0.profile(of: DriftScenario.wrongSignupUser)?.signupAt }.first
        #expect(signup?.epochSeconds == DriftScenario.signups(scenario.truth)[DriftScenario.wrongSignupUser])

        // Membership and KPIs equal a recomputation from the truth.
        let recomputed = try World(events: scenario.truth)
        let (members, kpis) = try world.membershipsAndKPIs()
        let (expectedMembers, expectedKPIs) = try recomputed.membershipsAndKPIs()
        #expect(members == expectedMembers)
        for (key, value) in expectedKPIs {
            let got = kpis[key] ?? nil
            #expect((got == nil) == (value == nil) && abs((got ?? 0) - (value ?? 0)) < 1e-6, "\(key): \(String(describing: got)) vs \(String(describing: value))")
        }
        #expect(first.membershipChanges > 0)
        #expect(try world.outboxMemberships(cause: "reconciliation") == first.membershipChanges)
        #expect(Set(world.access.kpiCauses.values) == [.reconciliation])
        #expect(world.access.writingSteps == 1, "the run's corrections land in one step: \(world.access.writingSteps)")

        let second = await reconciler.run(kind: .once, warehouse: try warehouse())
        #expect(second.status == .succeeded)
        #expect(second.daysDiffering.isEmpty && second.userDaysCorrected == 0 && second.signupsCorrected == 0 && second.membershipChanges == 0)
        #expect(second.rowsFetched == DriftScenario.dayCount)
        let history = try ReconciliationHistory(directory: world.directory, readOnly: true).recent()
        #expect(history.count == 2 && history[0].userDaysCorrected == 0 && history[1].userDaysCorrected == expected.userDays)
    }

    @Test func sqliteWarehouseDriftIsRepaired() async throws {
        let path = try SQLiteWarehouseFixture.create(WarehouseRows(scenario.truth), in: FileManager.default.temporaryDirectory)
        try await verifyRepair(target: .sqlite(path: path), queries: SQLiteWarehouseFixture.queries) {
            try SQLiteWarehouse(path: path, queries: SQLiteWarehouseFixture.queries)
        }
    }

    @Test func postgresWarehouseDriftIsRepaired() async throws {
        let fixture = PostgresFixture()
        guard let settings = PostgresFixture.settings() else { throw PostgresFixture.FixtureError.noServer }
        try await fixture.create(WarehouseRows(scenario.truth))
        let warehouse = PostgresWarehouse(settings: settings, queries: fixture.queries)
        try await verifyRepair(target: .postgres(settings), queries: fixture.queries) { warehouse }
        await warehouse.shutdown()
        try await fixture.drop()
    }

    /// A stream event for a day the warehouse already settled (it counted the event) is
    /// recorded but not added again; the next run finds nothing to repair.
    @Test func lateStreamEventForAReconciledDayIsNotCountedTwice() async throws {
        let path = try SQLiteWarehouseFixture.create(WarehouseRows(scenario.truth), in: FileManager.default.temporaryDirectory)
        var world = try World(events: scenario.stream)
        let reconciler = try world.reconciler(.sqlite(path: path), SQLiteWarehouseFixture.queries)
        let warehouse = try SQLiteWarehouse(path: path, queries: SQLiteWarehouseFixture.queries)
        #expect(await reconciler.run(kind: .once, warehouse: warehouse).status == .succeeded)

        // The events the stream missed arrive late: every one of them is already in the warehouse.
        let late = try DriftScenario.apply(scenario.missed, to: world.access.stores, offsets: &world.offsets)
        #expect(late.applied == scenario.missed.count)
        #expect(late.onReconciledDays == scenario.missed.count)
        #expect(try world.userDays() == DriftScenario.daily(scenario.truth))
        let again = await reconciler.run(kind: .once, warehouse: warehouse)
        #expect(again.daysDiffering.isEmpty && again.userDaysCorrected == 0)

        // A new event for an open day still counts as usual.
        let today = UserEvent(eventID: "fresh", userID: "user-1", ts: DriftScenario.end, body: .billing(cents: 700))
        _ = try DriftScenario.apply([today], to: world.access.stores, offsets: &world.offsets)
        #expect(try world.userDays()["user-1"]?[DayCalendar.utc.day(of: DriftScenario.end)]?.spendCents == 700)
    }

    /// A query error or an unreachable server: the run is reported failed with the cause, the
    /// state is untouched, and ingest still commits.
    @Test func failingWarehouseLeavesStateUntouched() async throws {
        var world = try World(events: scenario.stream)
        let before = try world.userDays()
        let badQueries = WarehouseQueries(daily: "SELECT user_id, day, spend, activities, active_seconds FROM no_such_table")
        let path = try SQLiteWarehouseFixture.create(WarehouseRows(scenario.truth), in: FileManager.default.temporaryDirectory)
        let broken = await (try world.reconciler(.sqlite(path: path), badQueries)
            ).run(kind: .once, warehouse: try SQLiteWarehouse(path: path, queries: badQueries))
        #expect(broken.status == .failed)
        #expect(broken.error?.contains("no such table: no_such_table") == true, "\(broken.error ?? "")")

        var settings = PostgresSettings(host: "127.0.0.1", port: 1, database: "postgres", user: "postgres", password: "secret-not-logged", tls: .disable)
        settings.connectTimeoutSeconds = 2
        settings.queryTimeoutSeconds = 20
        let unreachable = await (try world.reconciler(.postgres(settings), SQLiteWarehouseFixture.queries)
            ).run(kind: .once, warehouse: PostgresWarehouse(settings: settings, queries: SQLiteWarehouseFixture.queries))
        #expect(unreachable.status == .failed)
        #expect(unreachable.error?.contains("per-day totals") == true, "\(unreachable.error ?? "")")
        #expect(unreachable.error?.contains("secret-not-logged") == false)

        #expect(try world.userDays() == before)
        #expect(world.access.stores.values.allSatisfy { $0.reconciledDays == nil })
        let next = try DriftScenario.apply([UserEvent(eventID: "after", userID: "user-3", ts: DriftScenario.end, body: .billing(cents: 1))],
                                           to: world.access.stores, offsets: &world.offsets)
        #expect(next.applied == 1)
        let history = try ReconciliationHistory(directory: world.directory, readOnly: true).recent()
        #expect(history.map(\.status) == [.failed, .failed])
    }
}

/// `reconcile --backfill`: a new deployment seeds state from the warehouse, then the topics are
/// consumed from the beginning; nothing the warehouse already holds is counted twice.
@Suite struct BackfillTests {
    @Test func backfillThenFullReplayCountsEachEventOnce() async throws {
        let scenario = DriftScenario(seed: 11)
        let path = try SQLiteWarehouseFixture.create(WarehouseRows(scenario.truth), in: FileManager.default.temporaryDirectory)
        // Only the clock has been seen so far (a new deployment started a moment ago).
        let clock = UserEvent(eventID: "clock", userID: "zz-clock", ts: DriftScenario.end, body: .profile(attributes: ["plan": .string("x")]))
        var world = try ReconciliationTests.World(events: [clock])
        let reconciler = try world.reconciler(.sqlite(path: path), SQLiteWarehouseFixture.queries)
        let report = await reconciler.run(kind: .backfill, from: DayCalendar.utc.day(of: DriftScenario.base),
                                          warehouse: try SQLiteWarehouse(path: path, queries: SQLiteWarehouseFixture.queries))
        #expect(report.status == .succeeded, "\(report.error ?? "")")
        #expect(report.daysCompared == DriftScenario.dayCount)
        #expect(report.fromDay == DayCalendar.isoDate(DayCalendar.utc.day(of: DriftScenario.base)))
        #expect(try world.userDays() == DriftScenario.daily(scenario.truth))
        #expect(report.signupsCorrected == DriftScenario.signups(scenario.truth).count)

        // Streaming now replays every event of those days: recorded, not added again.
        let replay = try DriftScenario.apply(scenario.truth, to: world.access.stores, offsets: &world.offsets)
        #expect(replay.applied == scenario.truth.count)
        #expect(replay.onReconciledDays == scenario.truth.filter(\.body.countsInDay).count)
        #expect(try world.userDays() == DriftScenario.daily(scenario.truth))
        let (members, kpis) = try world.membershipsAndKPIs()
        let (expectedMembers, expectedKPIs) = try ReconciliationTests.World(events: scenario.truth + [clock]).membershipsAndKPIs()
        #expect(members == expectedMembers)
        for (key, value) in expectedKPIs {
            let got = kpis[key] ?? nil
            #expect((got == nil) == (value == nil) && abs((got ?? 0) - (value ?? 0)) < 1e-6, "\(key)")
        }
    }
}

/// Local bucket totals kept between runs: valid until the day's sums change, whether by ingest
/// or by a correction (which keeps them valid by applying the same differences).
@Suite struct BucketTotalsCacheTests {
    @Test func aCachedDayIsReadAgainAfterIngestChangesItAndStaysExactThroughCorrections() throws {
        let scenario = DriftScenario(seed: 5)
        var world = try ReconciliationTests.World(events: scenario.stream)
        let user = "user-1"
        let partition = Partitioner.murmur2Random.partition(of: user, count: DriftScenario.partitions)
        let store = try #require(world.access.stores[partition])
        let day = DayCalendar.utc.day(of: DriftScenario.base) + 4
        /// What the rows say, summed in Swift: the truth the cache must equal.
        func fromRows() throws -> [String: DayTotals] {
            var totals: [String: DayTotals] = [:]
            for (id, sums) in try store.reads.userDays(on: day) { totals[UserBucket.of(id), default: DayTotals()].add(sums) }
            return totals.filter { $0.value != DayTotals() }
        }

        let first = try store.reads.bucketTotals(on: day, bucketOf: UserBucket.of(utf8:))
        let rowsBefore = try fromRows()
        #expect(!first.cached && first.totals == rowsBefore)
        try store.cacheBucketTotals(first.totals, of: day, version: first.version)
        let cached = try store.reads.bucketTotals(on: day, bucketOf: UserBucket.of(utf8:))
        #expect(cached.cached && cached.totals == first.totals)
        #expect(try store.reads.dayTotals(in: day...day)[day]?.spendCents == first.totals.values.reduce(0) { $0 + $1.spendCents })

        // Ingest adds a charge to that day: the cache is stale, the next read sees the charge.
        let charge = UserEvent(eventID: "late-charge", userID: user, ts: DriftScenario.base.adding(seconds: 4 * 86_400 + 60), body: .billing(cents: 1234))
        #expect(try DriftScenario.apply([charge], to: world.access.stores, offsets: &world.offsets).applied == 1)
        let after = try store.reads.bucketTotals(on: day, bucketOf: UserBucket.of(utf8:))
        let rowsAfter = try fromRows()
        #expect(!after.cached && after.totals == rowsAfter)
        #expect(after.totals[UserBucket.of(user)]?.spendCents == (first.totals[UserBucket.of(user)]?.spendCents ?? 0) + 1234)
        // A cache computed before that commit is refused: its version is gone.
        try store.cacheBucketTotals(first.totals, of: day, version: first.version)
        #expect(try !store.reads.bucketTotals(on: day, bucketOf: UserBucket.of(utf8:)).cached)

        // A correction keeps a valid cache valid and exact: one user changed, one removed, one new.
        try store.cacheBucketTotals(after.totals, of: day, version: after.version)
        let others = try store.reads.userDays(on: day).keys.filter { $0 != user }.sorted()
        let corrections: [String: [DayNumber: DayAggregate]] = [
            user: [day: DayAggregate(spendCents: 99, activities: 1, activeMicros: 5)],
            try #require(others.first): [day: DayAggregate()],
            "newcomer-\(partition)": [day: DayAggregate(spendCents: 500)],
        ]
        _ = try store.takeWarehouseValues(corrections.mapValues { UserCorrection(days: $0) }, now: DriftScenario.end, bucketOf: UserBucket.of(_:))
        let corrected = try store.reads.bucketTotals(on: day, bucketOf: UserBucket.of(utf8:))
        #expect(corrected.cached)
        let rowsCorrected = try fromRows()
        #expect(corrected.totals.filter { $0.value != DayTotals() } == rowsCorrected)

        // Days out of the window are forgotten; the rows are what they were.
        try store.pruneBucketCache(before: day + 1)
        let pruned = try store.reads.bucketTotals(on: day, bucketOf: UserBucket.of(utf8:))
        #expect(!pruned.cached && pruned.totals.filter { $0.value != DayTotals() } == rowsCorrected)
    }
}
