import SegmenterCore
import SQLite

/// What adopting a rebuilt state changed: members per segment before and after, and the
/// membership messages written to the outbox (the net differences only).
public struct RebuildAdoption: Sendable, Equatable {
    public var membersBefore: [String: Int] = [:]
    public var membersAfter: [String: Int] = [:]
    public var entered: [String: Int] = [:]
    public var exited: [String: Int] = [:]
    public var messages = 0
    /// Users who had published memberships and are not in the rebuilt state at all.
    public var usersGone = 0
}

extension PartitionStore {
    /// Tables re-derived from the input by a rebuild. The rest stays: `memberships` (what was
    /// published, the reference the differences are taken against), the outbox (messages not
    /// sent yet), the KPI chain, its history and alert states (partition 0), `meta_text`.
    /// KPI partials are summed again from the evaluation below.
    static let derivedTables = ["users", "user_days", "offsets", "timers", "meta", "pending_events",
                                "day_versions", "bucket_totals", "bucket_totals_days", "user_metric_days", "user_metric_values"]

    /// Replaces this partition's derived state with the one rebuilt in `rebuiltPath` (a
    /// partition database written by the same schema from the input), then evaluates every
    /// user against the memberships published so far and writes only the differences, cause
    /// `rebuild`, with KPI partials summed anew. One transaction: a crash leaves the old state.
    public func adoptRebuilt(from rebuiltPath: String) throws -> RebuildAdoption {
        var adoption = RebuildAdoption()
        adoption.membersBefore = try memberCounts()
        let attach = try db.prepare("ATTACH DATABASE ? AS rebuilt")
        attach.bind(1, rebuiltPath)
        try attach.run()
        defer { try? db.execute("DETACH DATABASE rebuilt") }
        var effects = BatchEffects(partials: KPIPartials())
        try db.transaction {
            try db.execute("""
                CREATE TEMP TABLE published_before AS SELECT user_id, segment FROM memberships;
                CREATE UNIQUE INDEX temp.published_before_key ON published_before (user_id, segment)
                """)
            defer { try? db.execute("DROP TABLE temp.published_before") }
            for table in Self.derivedTables {
                try db.execute("DELETE FROM main.\(table); INSERT INTO main.\(table) SELECT * FROM rebuilt.\(table)")
            }
            watermark = try storedWatermark()
            let now = watermark.clock
            if let now {
                var reevaluation = Reevaluation(processor, at: now, cause: .rebuild, previous: partials, carryingDayCounts: false)
                try evaluateEveryone(into: &reevaluation, at: now)
                effects = reevaluation.finish()
            } else {
                try db.execute("DELETE FROM kpi_partials")  // no events: no user, no sums
            }
            adoption.messages = effects.outcome.membershipChanges
            // Published members the rebuilt state does not know.
            let gone = try db.prepare("SELECT DISTINCT user_id FROM memberships WHERE user_id NOT IN (SELECT user_id FROM users)")
            var goneUsers: [String] = []
            while try gone.step() { goneUsers.append(gone.string(0)!) }
            gone.reset()
            for userID in goneUsers {
                adoption.usersGone += 1
                adoption.messages += processor.forget(userID, memberships: try memberships(of: userID), now: now ?? Instant(nanoseconds: 0),
                                                      cause: .rebuild, into: &effects)
            }
            try write(effects)
            try putText("catalog", segments.catalog.fingerprint)
            try recordMetricDefinitions(at: now, rebuilt: true)
            adoption.entered = try segmentCounts("""
                SELECT segment, count(*) FROM memberships m WHERE NOT EXISTS
                (SELECT 1 FROM published_before b WHERE b.user_id = m.user_id AND b.segment = m.segment) GROUP BY segment
                """)
            adoption.exited = try segmentCounts("""
                SELECT segment, count(*) FROM published_before b WHERE NOT EXISTS
                (SELECT 1 FROM memberships m WHERE m.user_id = b.user_id AND m.segment = b.segment) GROUP BY segment
                """)
        }
        cache.removeAll()
        try readPendingWake()
        progress = (try storedOffsets(), try eventTimes())
        (reconciledDays, metricsReconciledDays) = (try storedReconciledDays(), try storedReconciledDays(of: .metrics))
        try remember(effects)
        nextTimer = try earliestTimer()
        adoption.membersAfter = try memberCounts()
        return adoption
    }

    /// Members per segment (`all` included).
    func memberCounts() throws -> [String: Int] {
        try segmentCounts("SELECT segment, count(*) FROM memberships GROUP BY segment")
    }

    private func segmentCounts(_ sql: String) throws -> [String: Int] {
        let statement = try db.prepare(sql)
        var counts: [String: Int] = [:]
        while try statement.step() { counts[statement.string(0)!] = Int(statement.int64(1)) }
        return counts
    }
}
