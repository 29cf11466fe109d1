import Foundation
import Logging
import PostgresNIO
import Testing
@testable import SegmenterCore
@testable import SegmenterService
@testable import ServiceConfig
@testable import ServiceRuntime
@testable import Ingest
@testable import Reconciliation
@testable import SegmenterStore
import SQLite
@testable import Warehouse

/// `metrics_sql` (SPEC §4b) against real warehouses (a SQLite file; the PostgreSQL server
/// scripts/test starts): the drift of the scenario's stream shows in its metrics too; counts and
/// sums take the warehouse's values exactly (day rows, lifetime totals, memberships, KPIs),
/// `count_distinct` is compared and reported only, a metric the warehouse has no rows for is left alone, a second run corrects nothing, and late
/// stream events for the reconciled days are not counted twice.
@Suite(.serialized) struct MetricReconciliationTests {
    let scenario = DriftScenario(seed: 7)

    static let metrics = MetricCatalog([
        try! MetricDefinition(name: "sessions", source: .count(filter: "type = 'session'")),
        try! MetricDefinition(name: "paid", source: .sum(value: "amount", filter: nil)),
        try! MetricDefinition(name: "session_kinds", source: .countDistinct(value: "type", filter: "duration_s >= 0")),
        // Not in the warehouse's table: not compared, and the report says so.
        try! MetricDefinition(name: "long_sessions", source: .count(filter: "duration_s > 1200")),
    ])

    static let catalog = SegmentCatalog(
        segments: [
            try! SegmentDefinition(name: "frequent", ruleText: "sessions(7d) >= 6", metrics: metrics),
            try! SegmentDefinition(name: "payers", ruleText: "paid(30d) > 300", metrics: metrics),
            try! SegmentDefinition(name: "loyal", ruleText: "sessions(lifetime) >= 25", metrics: metrics),
        ],
        kpis: [
            try! KPIDefinition(name: "paid_30d", kind: .sum, expressionText: "paid(30d)", segments: nil, metrics: metrics),
            try! KPIDefinition(name: "sessions_7d", kind: .avg, expressionText: "sessions(7d)", segments: nil, metrics: metrics),
        ],
        metrics: metrics)

    /// Per user, day and metric name, the value in millionths, recomputed here from the events
    /// (not by the metric code): sessions counted, billing amounts summed, 1 for a day with a session.
    static func values(_ events: [UserEvent]) -> [String: [DayNumber: [String: Int64]]] {
        var result: [String: [DayNumber: [String: Int64]]] = [:]
        for event in events {
            let day = DayCalendar.utc.day(of: event.ts)
            switch event.body {
            case .activity:
                result[event.userID, default: [:]][day, default: [:]]["sessions", default: 0] += 1_000_000
                result[event.userID, default: [:]][day, default: [:]]["session_kinds"] = 1_000_000
            case let .billing(cents):
                result[event.userID, default: [:]][day, default: [:]]["paid", default: 0] += cents * 10_000
            default: break
            }
        }
        return result.mapValues { $0.mapValues { $0.filter { $0.value != 0 } }.filter { !$0.value.isEmpty } }.filter { !$0.value.isEmpty }
    }

    /// The warehouse's `daily_metrics` rows: the truth's values in its own units, and rows of a
    /// metric no definition has (ignored and reported).
    static func rows(_ truth: [UserEvent]) -> [(user: String, day: String, metric: String, value: String)] {
        var rows: [(user: String, day: String, metric: String, value: String)] = []
        for (user, days) in values(truth).sorted(by: { $0.key < $1.key }) {
            for (day, byMetric) in days.sorted(by: { $0.key < $1.key }) {
                for (metric, millionths) in byMetric.sorted(by: { $0.key < $1.key }) {
                    rows.append((user, DayCalendar.isoDate(day), metric, metric == "paid" ? Money.format(cents: millionths / 10_000) : String(millionths / 1_000_000)))
                }
            }
        }
        rows.append(("user-1", DayCalendar.isoDate(DayCalendar.utc.day(of: DriftScenario.base) + 2), "legacy_metric", "3"))
        return rows
    }

    /// What the report must say, from the scenario: differing (day, metric) pairs, corrected
    /// user values, and the `count_distinct` user-days that differ.
    struct Expected {
        var pairs: Set<String> = []
        var corrected = 0
        var distinctDiffering = 0

        init(truth: [UserEvent], stream: [UserEvent]) {
            let t = MetricReconciliationTests.values(truth), s = MetricReconciliationTests.values(stream)
            for user in Set(t.keys).union(s.keys) {
                for day in Set((t[user] ?? [:]).keys).union((s[user] ?? [:]).keys) {
                    for metric in ["sessions", "paid", "session_kinds"] where t[user]?[day]?[metric] != s[user]?[day]?[metric] {
                        pairs.insert("\(DayCalendar.isoDate(day)) \(metric)")
                        if metric == "session_kinds" { distinctDiffering += 1 } else { corrected += 1 }
                    }
                }
            }
        }
    }

    /// Local values of the corrected metrics, per user, day and name, in millionths; and lifetimes.
    static func local(_ world: ReconciliationTests.World) throws -> (days: [String: [DayNumber: [String: Int64]]], lifetimes: [String: [String: Int64]]) {
        var days: [String: [DayNumber: [String: Int64]]] = [:]
        var lifetimes: [String: [String: Int64]] = [:]
        let keys = [metrics.refs["sessions"]!.key: ("sessions", Int64(1_000_000)), metrics.refs["paid"]!.key: ("paid", 1)]
        for store in world.access.stores.values {
            for day in DayCalendar.utc.day(of: DriftScenario.base)...DayCalendar.utc.day(of: DriftScenario.end) {
                for (user, byKey) in try store.reads.metricValues(on: day, keys: Array(keys.keys)) {
                    for (key, raw) in byKey { days[user, default: [:]][day, default: [:]][keys[key]!.0] = raw * keys[key]!.1 }
                }
            }
            for user in Set(days.keys) {
                guard let profile = try store.profile(of: user) else { continue }
                for (key, (name, unit)) in keys {
                    if let lifetime = profile.metrics.totals[key]?.lifetime, lifetime != 0 { lifetimes[user, default: [:]][name] = lifetime * unit }
                }
            }
        }
        return (days, lifetimes)
    }

    /// The truth restricted to the corrected metrics, and its lifetimes.
    static func corrected(_ values: [String: [DayNumber: [String: Int64]]]) -> (days: [String: [DayNumber: [String: Int64]]], lifetimes: [String: [String: Int64]]) {
        let days = values.mapValues { $0.mapValues { $0.filter { $0.key != "session_kinds" } }.filter { !$0.value.isEmpty } }.filter { !$0.value.isEmpty }
        let lifetimes = days.mapValues { $0.values.reduce(into: [String: Int64]()) { $0.merge($1, uniquingKeysWith: +) }.filter { $0.value != 0 } }
        return (days, lifetimes.filter { !$0.value.isEmpty })
    }

    func verify(target: ReconciliationConfig.Target, queries: WarehouseQueries, warehouse: () throws -> any Warehouse) async throws {
        var world = try ReconciliationTests.World(events: scenario.stream, catalog: Self.catalog)
        let reconciler = try world.reconciler(target, queries)
        let truth = Self.corrected(Self.values(scenario.truth))
        let before = try Self.local(world)
        #expect(before.days == Self.corrected(Self.values(scenario.stream)).days, "the stream's metrics are what it delivered")
        #expect(before.days != truth.days)

        let first = await reconciler.run(kind: .once, warehouse: try warehouse())
        #expect(first.status == .succeeded, "\(first.error ?? "")")
        let summary = try #require(first.metrics)
        let expected = Expected(truth: scenario.truth, stream: scenario.stream)
        #expect(Set(summary.dayMetricsDiffering) == expected.pairs)
        #expect(summary.dayMetricsCompared == 30 * 3)
        #expect(summary.userValuesCorrected == expected.corrected)
        #expect(summary.differingNotCorrected["session_kinds"] ?? 0 == expected.distinctDiffering)
        #expect(summary.unknownMetrics == ["legacy_metric"])
        #expect(summary.notInWarehouse == ["long_sessions"])
        #expect(expected.corrected > 20, "the scenario drifts: \(expected.corrected) user values")

        // Counts and sums now equal the warehouse's, per day and over the lifetime.
        let after = try Self.local(world)
        #expect(after.days == truth.days)
        #expect(after.lifetimes == truth.lifetimes)

        // Memberships and KPIs equal a recomputation from the truth; the changes were published.
        let (members, kpis) = try world.membershipsAndKPIs()
        let (expectedMembers, expectedKPIs) = try ReconciliationTests.World(events: scenario.truth, catalog: Self.catalog).membershipsAndKPIs()
        #expect(members == expectedMembers)
        for (key, value) in expectedKPIs {
            let got = kpis[key] ?? nil
            #expect((got == nil) == (value == nil) && abs((got ?? 0) - (value ?? 0)) < 1e-6, "\(key): \(String(describing: got)) vs \(String(describing: value))")
        }
        #expect(first.membershipChanges > 0)
        #expect(try world.outboxMemberships(cause: "reconciliation") == first.membershipChanges)

        // A second run corrects nothing; only the distinct counts, never corrected, still differ.
        let second = await reconciler.run(kind: .once, warehouse: try warehouse())
        #expect(second.status == .succeeded)
        #expect(second.metrics?.userValuesCorrected == 0 && second.membershipChanges == 0)
        #expect(second.metrics?.dayMetricsDiffering.allSatisfy { $0.hasSuffix(" session_kinds") } == true)

        // The events the stream missed arrive late: their days' counts and sums are the
        // warehouse's already, so nothing is added twice.
        let late = try DriftScenario.apply(scenario.missed, to: world.access.stores, offsets: &world.offsets)
        #expect(late.applied == scenario.missed.count)
        #expect(try Self.local(world).days == truth.days)
        let third = await reconciler.run(kind: .once, warehouse: try warehouse())
        #expect(third.metrics?.userValuesCorrected == 0 && third.metrics?.dayMetricsDiffering.isEmpty == true, "\(third.summary)")
    }

    @Test func sqliteMetricsDriftIsRepaired() async throws {
        let path = try SQLiteWarehouseFixture.create(WarehouseRows(scenario.truth), in: FileManager.default.temporaryDirectory)
        let db = try SQLiteConnection(path: path)
        try db.execute("CREATE TABLE daily_metrics (user_id TEXT, day TEXT, metric TEXT, value REAL)")
        try db.transaction {
            let insert = try db.prepare("INSERT INTO daily_metrics VALUES (?, ?, ?, CAST(? AS REAL))")
            for row in Self.rows(scenario.truth) {
                insert.reset()
                insert.bind(1, row.user)
                insert.bind(2, row.day)
                insert.bind(3, row.metric)
                insert.bind(4, row.value)
                try insert.run()
            }
        }
        var queries = SQLiteWarehouseFixture.queries
        queries.metrics = "SELECT user_id, day, metric, value FROM daily_metrics"
        let configured = queries
        try await verify(target: .sqlite(path: path), queries: queries) { try SQLiteWarehouse(path: path, queries: configured) }
    }

    @Test func postgresMetricsDriftIsRepaired() async throws {
        let fixture = PostgresFixture()
        guard let settings = PostgresFixture.settings() else { throw PostgresFixture.FixtureError.noServer }
        try await fixture.create(WarehouseRows(scenario.truth))
        let rows = Self.rows(scenario.truth)
        try await fixture.withClient { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(fixture.schema).daily_metrics (user_id text, day date, metric text, value numeric(18,6))"))
            var bindings = PostgresBindings()
            bindings.append(rows.map(\.user))
            bindings.append(rows.map(\.day))
            bindings.append(rows.map(\.metric))
            bindings.append(rows.map(\.value))
            try await client.query(PostgresQuery(unsafeSQL: """
                INSERT INTO \(fixture.schema).daily_metrics SELECT * FROM unnest($1::text[], $2::text[]::date[], $3::text[], $4::text[]::numeric[])
                """, binds: bindings))
        }
        var queries = fixture.queries
        queries.metrics = "SELECT user_id, day, metric, value FROM \(fixture.schema).daily_metrics"
        let warehouse = PostgresWarehouse(settings: settings, queries: queries)
        try await verify(target: .postgres(settings), queries: queries) { warehouse }
        await warehouse.shutdown()
        try await fixture.drop()
    }
}
