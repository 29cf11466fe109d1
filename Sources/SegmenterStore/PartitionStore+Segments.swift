import Foundation
import SegmenterCore
import SQLite

/// What segment evaluation needs besides the state: the definitions and where changes go.
public struct SegmentSetup: Sendable {
    public var catalog: SegmentCatalog
    public var membershipTopic: String
    /// The compacted table of current memberships (`topics.members`); nil: not written.
    public var membersTopic: String?
    /// The KPI leader's grid of event time (`kpi_step`).
    public var kpiGrid: KPIGrid
    public init(catalog: SegmentCatalog = SegmentCatalog(), membershipTopic: String = "segment-membership", membersTopic: String? = nil,
                kpiGrid: KPIGrid = .default) {
        self.catalog = catalog
        self.membershipTopic = membershipTopic
        self.membersTopic = membersTopic
        self.kpiGrid = kpiGrid
    }
}

extension PartitionStore {
    /// Armed timers (a count over the index: call now and then, not per batch).
    public func timerCount() throws -> Int {
        let statement = try db.prepare("SELECT count(*) FROM timers")
        _ = try statement.step()
        return Int(statement.int64(0))
    }

    func loadPartials() throws -> KPIPartials {
        let statement = try db.prepare("SELECT segment, kpi, counted, total_bits FROM kpi_partials")
        var values: [KPIKey: KPIPartial] = [:]
        while try statement.step() {
            values[KPIKey(segment: statement.string(0)!, kpi: statement.string(1)!)] =
                KPIPartial(counted: statement.int64(2), total: Double(bitPattern: UInt64(bitPattern: statement.int64(3))))
        }
        return KPIPartials(values: values)
    }

    /// After a change of segment or KPI definitions, re-evaluates every user once (cause
    /// `config`) and rebuilds the partials from nothing, in one transaction. Segments no longer
    /// defined lose their rows (their exits are published per user).
    func reevaluateEveryone(now: Instant) throws -> Int {
        var reevaluation = Reevaluation(processor, at: now, cause: .config, previous: partials, carryingDayCounts: segments.catalog.volatility)
        let effects = try db.transaction {
            try evaluateEveryone(into: &reevaluation, at: now)
            let effects = reevaluation.finish()
            try write(effects)
            try putText("catalog", segments.catalog.fingerprint)
            try recordMetricDefinitions(at: now)
            return effects
        }
        cache.removeAll()  // everyone changed: the next batches read what they need
        try remember(effects)
        return effects.outcome.membershipChanges
    }

    /// Feeds every user's slice to `reevaluation`, the KPI partials' rows deleted (the
    /// reevaluation sums them anew). Call inside a transaction, then write its effects: a
    /// definition change and a rebuild both do.
    func evaluateEveryone(into reevaluation: inout Reevaluation, at now: Instant) throws {
        try db.execute("DELETE FROM kpi_partials")
        let firstDay = segments.catalog.firstWindowDay(at: now, calendar: calendar)
        let users = try db.prepare("SELECT user_id, \(StateReading.profileColumns) FROM users")
        while try users.step() {
            var slice = try readSlice(of: users.string(0)!, profile: try StateReading.profile(from: users, first: 1), firstDay: firstDay)
            reevaluation.evaluate(users.string(0)!, &slice)
        }
    }

    func text(_ key: String) throws -> String? {
        let statement = try db.prepare("SELECT value FROM meta_text WHERE key = ?")
        statement.bind(1, key)
        return try statement.step() ? statement.string(0) : nil
    }

    func putText(_ key: String, _ value: String) throws {
        let statement = try db.prepare("INSERT OR REPLACE INTO meta_text (key, value) VALUES (?, ?)")
        statement.bind(1, key)
        statement.bind(2, value)
        try statement.run()
    }
}

extension PartitionStore {
    /// Adds every member of `segment` to a drill-down of `kpi` (a scan, done only when an alert fires).
    public func drillDown(segment: String, kpi: String, into accumulator: inout DrillDownAccumulator, dimensions: [String]) throws {
        try Self.scanDrillDown(db, catalog: segments.catalog, calendar: calendar, segment: segment, kpi: kpi, into: &accumulator, dimensions: dimensions)
    }

    /// The same scan over any connection to a partition database (the writer's, or a reader's).
    static func scanDrillDown(_ db: SQLiteConnection, catalog: SegmentCatalog, calendar: DayCalendar, segment: String, kpi: String,
                          into accumulator: inout DrillDownAccumulator, dimensions: [String]) throws {
        let index = catalog.kpis(for: segment).firstIndex { $0.name == kpi }
        let statement = try db.prepare("""
            SELECT m.contributions, u.signup_at, u.attributes FROM memberships m JOIN users u ON u.user_id = m.user_id
            WHERE m.segment = ?
            """)
        statement.bind(1, segment)
        while try statement.step() {
            let contribution: Double? = if let index {
                ContributionCodec.decode(statement.blob(0) ?? []).dropFirst(index).first ?? nil
            } else {
                1  // `members`: everyone counts once
            }
            let attributes = try ProfileCodec.decodeAttributes(statement.string(2))
            let groups = DrillDownAccumulator.groups(signupAt: statement.optionalInt64(1).map(Instant.init(nanoseconds:)),
                                                     attributes: attributes, dimensions: dimensions, calendar: calendar)
            accumulator.add(contribution: contribution, groups: groups)
        }
    }
}

extension StateReader {
    /// A drill-down of `kpi` over the members of `segment` in the partitions this reader holds.
    public func drillDown(catalog: SegmentCatalog, calendar: DayCalendar, segment: String, kpi: String) throws -> DrillDownAccumulator {
        var accumulator = DrillDownAccumulator(kind: catalog.kpis.first { $0.name == kpi }?.kind ?? .sum)
        let dimensions = DrillDownAccumulator.dimensions(catalog)
        for (_, db) in partitions {
            try PartitionStore.scanDrillDown(db, catalog: catalog, calendar: calendar, segment: segment, kpi: kpi, into: &accumulator, dimensions: dimensions)
        }
        return accumulator
    }
}
