import SegmenterCore
import SQLite

/// The prepared statements of the commit path: loading what a batch touches, writing its effects.
final class StoreStatements {
    let selectOffsets: Statement
    let selectMeta: Statement
    let setMeta: Statement
    let selectProfile: Statement
    let upsertProfile: Statement
    let updateProfileTotals: Statement
    let selectUserDays: Statement
    let selectDays: Statement
    let selectEvidence: Statement
    let addDay: Statement
    let bumpDayVersion: Statement
    let upsertOffset: Statement
    let selectMemberships: Statement
    let upsertMembership: Statement
    let deleteMembership: Statement
    let upsertTimer: Statement
    let deleteTimer: Statement
    let selectDue: Statement
    let selectEarliestTimer: Statement
    let upsertPartial: Statement
    let selectPending: Statement
    let upsertPending: Statement
    let deletePending: Statement
    let insertHistory: Statement
    /// A user's days of the metrics some window reads (nil: no window reads a metric).
    let selectMetricDays: Statement?
    let windowedMetrics: [MetricKey]
    let addMetricDay: Statement
    let insertMetricValue: Statement

    init(_ db: SQLiteConnection, catalog: SegmentCatalog) throws {
        selectOffsets = try db.prepare("SELECT topic, next_offset FROM offsets WHERE partition = ?")
        selectMeta = try db.prepare("SELECT value FROM meta WHERE key = ?")
        setMeta = try db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")
        selectProfile = try db.prepare("SELECT \(StateReading.profileColumns) FROM users WHERE user_id = ?")
        // An upsert, not a REPLACE: the user's bucket (reconciliation's) stays.
        upsertProfile = try db.prepare("""
            INSERT INTO users (user_id, signup_at, last_activity_at, lifetime_spend_cents, lifetime_activities,
                lifetime_active_us, activity_before_signup, attributes, accounts, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (user_id) DO UPDATE SET signup_at = excluded.signup_at, last_activity_at = excluded.last_activity_at,
                lifetime_spend_cents = excluded.lifetime_spend_cents, lifetime_activities = excluded.lifetime_activities,
                lifetime_active_us = excluded.lifetime_active_us, activity_before_signup = excluded.activity_before_signup,
                attributes = excluded.attributes, accounts = excluded.accounts, metrics = excluded.metrics
            """)
        updateProfileTotals = try db.prepare("""
            UPDATE users SET last_activity_at = ?, lifetime_spend_cents = ?, lifetime_activities = ?, lifetime_active_us = ?, metrics = ?
            WHERE user_id = ?
            """)
        // A user's rows a batch needs: the days any window reaches, and every day still holding evidence.
        selectUserDays = try db.prepare("""
            SELECT day, spend_cents, activities, active_us, evidence FROM user_days
            WHERE user_id = ? AND (day >= ? OR evidence IS NOT NULL)
            """)
        selectDays = try db.prepare("SELECT day, spend_cents, activities, active_us FROM user_days WHERE user_id = ? AND day >= ?")
        selectEvidence = try db.prepare("SELECT day, evidence FROM user_days WHERE user_id = ? AND evidence IS NOT NULL")
        addDay = try db.prepare("""
            INSERT INTO user_days (user_id, day, spend_cents, activities, active_us, evidence) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (user_id, day) DO UPDATE SET spend_cents = spend_cents + excluded.spend_cents,
                activities = activities + excluded.activities, active_us = active_us + excluded.active_us,
                evidence = coalesce(excluded.evidence, user_days.evidence)
            """)
        bumpDayVersion = try db.prepare("INSERT INTO day_versions (day, version) VALUES (?, 1) ON CONFLICT (day) DO UPDATE SET version = version + 1")
        upsertOffset = try db.prepare("""
            INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?)
            ON CONFLICT (topic, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)
            """)
        selectMemberships = try db.prepare("SELECT segment, contributions FROM memberships WHERE user_id = ?")
        upsertMembership = try db.prepare("INSERT OR REPLACE INTO memberships (user_id, segment, contributions) VALUES (?, ?, ?)")
        deleteMembership = try db.prepare("DELETE FROM memberships WHERE user_id = ? AND segment = ?")
        upsertTimer = try db.prepare("INSERT OR REPLACE INTO timers (user_id, due) VALUES (?, ?)")
        deleteTimer = try db.prepare("DELETE FROM timers WHERE user_id = ?")
        selectDue = try db.prepare("SELECT user_id, due FROM timers WHERE due <= ? ORDER BY due")
        selectEarliestTimer = try db.prepare("SELECT min(due) FROM timers")
        upsertPartial = try db.prepare("INSERT OR REPLACE INTO kpi_partials (segment, kpi, counted, total_bits) VALUES (?, ?, ?, ?)")
        selectPending = try db.prepare("SELECT events FROM pending_events WHERE user_id = ?")
        upsertPending = try db.prepare("INSERT OR REPLACE INTO pending_events (user_id, events) VALUES (?, ?)")
        deletePending = try db.prepare("DELETE FROM pending_events WHERE user_id = ?")
        insertHistory = try db.prepare("INSERT INTO membership_history (user_id, segment, entered, as_of, cause) VALUES (?, ?, ?, ?, ?)")
        // Only the metrics a window reads need their days (lifetime values and hours since are per user).
        windowedMetrics = catalog.timeTriggers.metricWindows.keys.map(\.key).sorted()
        selectMetricDays = windowedMetrics.isEmpty ? nil : try db.prepare(StateReading.metricDaysQuery(metrics: windowedMetrics.count))
        addMetricDay = try db.prepare("""
            INSERT INTO user_metric_days (user_id, day, metric, total) VALUES (?, ?, ?, ?)
            ON CONFLICT (user_id, day, metric) DO UPDATE SET total = total + excluded.total
            """)
        insertMetricValue = try db.prepare("INSERT OR IGNORE INTO user_metric_values (user_id, day, metric, value) VALUES (?, ?, ?, ?)")
    }
}

// MARK: Loading what a batch touches

/// The store answers `BatchProcessor.load` from its cache and rows (a class: `mutating` is free).
extension PartitionStore: PartitionStateReading {
    public func slice(of userID: String, firstDay: DayNumber, evidence: Bool) throws -> UserSlice {
        try takeSlice(of: userID, firstDay: firstDay, evidence: evidence)
    }

    public func usersToWake(at clock: Instant) throws -> [(userID: String, due: Instant?, evidence: Bool)] {
        // The earliest timer is cached: most batches fire none and read nothing.
        var woken: [(userID: String, due: Instant?, evidence: Bool)] = []
        if let next = nextTimer, next <= clock {
            woken = try dueUsers(at: clock).map { ($0.userID, $0.due, pendingWake[$0.userID] != nil) }
        }
        guard let earliestPending, earliestPending <= clock else { return woken }
        let timed = Set(woken.map(\.userID))
        // In the order of their first waiting event, then of their id: the same for every run.
        let waiting = pendingWake.filter { $0.value <= clock && !timed.contains($0.key) }.sorted { ($0.value, $0.key) < ($1.value, $1.key) }
        return woken + waiting.map { ($0.key, nil, true) }
    }
}

extension PartitionStore {
    /// A user as last committed, moved out of the cache (a failed batch then leaves nothing
    /// stale behind, and the batch's first change to the user copies nothing), or read.
    /// - Parameter evidence: the user has events to check: their evidence must be loaded.
    func takeSlice(of userID: String, firstDay: DayNumber, evidence: Bool) throws -> UserSlice {
        if var cached = cache.removeValue(forKey: userID) {
            if evidence && cached.evidence == nil { cached.evidence = try readEvidence(of: userID) }
            return cached
        }
        guard let profile = try StateReading.profile(of: userID, using: statements.selectProfile.reset()) else {
            // A user whose every event waits has no profile row yet.
            return UserSlice(profile: nil, evidence: evidence ? try readEvidence(of: userID) : RecentEvidence(),
                             pending: try pendingEvents(of: userID))
        }
        return try readSlice(of: userID, profile: profile, firstDay: firstDay, evidence: evidence)
    }

    /// The user's events waiting for the pair's clock, in arrival order.
    func pendingEvents(of userID: String) throws -> [UserEvent] {
        guard pendingWake[userID] != nil else { return [] }
        let rows = statements.selectPending.reset()
        rows.bind(1, userID)
        defer { rows.reset() }
        return try rows.step() ? try PendingEventCodec.decode(rows.blob(0) ?? [], userID: userID) : []
    }

    /// A user's rows: days from `firstDay` on and memberships, and with `evidence` the ids of
    /// every day that still holds some. The timer is not read, so it is rewritten after evaluation.
    func readSlice(of userID: String, profile: UserProfile, firstDay: DayNumber, evidence: Bool = false) throws -> UserSlice {
        let rows = (evidence ? statements.selectUserDays : statements.selectDays).reset()
        rows.bind(1, userID)
        rows.bind(2, Int64(firstDay))
        defer { rows.reset() }
        var days: [DayNumber: DayAggregate] = [:]
        var ids: [DayNumber: EventEvidence] = [:]
        while try rows.step() {
            let day = DayNumber(rows.int64(0))
            let sums = DayAggregate(spendCents: rows.int64(1), activities: rows.int64(2), activeMicros: rows.int64(3))
            if day >= firstDay && sums != DayAggregate() { days[day] = sums }
            if evidence, let blob = rows.blob(4), !blob.isEmpty { ids[day] = EventEvidence(encoded: blob) }
        }
        var profile = profile
        if !profile.metrics.totals.isEmpty, profile.metrics.totals.keys.contains(where: { !segments.catalog.metrics.keys.contains($0) }) {
            // A metric no longer defined, or defined differently: its state is dropped with the next write.
            profile.metrics.totals = profile.metrics.totals.filter { segments.catalog.metrics.keys.contains($0.key) }
        }
        if let select = statements.selectMetricDays, !profile.metrics.totals.isEmpty {
            profile.metrics.days = try StateReading.metricDays(of: userID, from: firstDay, using: select, keys: statements.windowedMetrics)
        }
        return UserSlice(profile: profile, days: days, evidence: evidence ? RecentEvidence(days: ids) : nil,
                         memberships: try memberships(of: userID), pending: try pendingEvents(of: userID))
    }

    /// The ids of every day of the user that still holds some.
    func readEvidence(of userID: String) throws -> RecentEvidence {
        let rows = statements.selectEvidence.reset()
        rows.bind(1, userID)
        defer { rows.reset() }
        var ids: [DayNumber: EventEvidence] = [:]
        while try rows.step() { ids[DayNumber(rows.int64(0))] = EventEvidence(encoded: rows.blob(1) ?? []) }
        return RecentEvidence(days: ids)
    }

    /// The user's stored memberships: segment → KPI contributions.
    func memberships(of userID: String) throws -> [String: [Double?]] {
        let statement = statements.selectMemberships.reset()
        statement.bind(1, userID)
        defer { statement.reset() }
        var result: [String: [Double?]] = [:]
        while try statement.step() { result[statement.string(0)!] = ContributionCodec.decode(statement.blob(1) ?? []) }
        return result
    }

    /// Users whose timers are due at `now`, with their timers.
    func dueUsers(at now: Instant) throws -> [(userID: String, due: Instant)] {
        let statement = statements.selectDue.reset()
        statement.bind(1, now.nanoseconds)
        defer { statement.reset() }
        var due: [(String, Instant)] = []
        while try statement.step() { due.append((statement.string(0)!, Instant(nanoseconds: statement.int64(1)))) }
        return due
    }

    /// The earliest due timer, to skip clock steps that fire nothing.
    func earliestTimer() throws -> Instant? {
        let statement = statements.selectEarliestTimer.reset()
        defer { statement.reset() }
        _ = try statement.step()
        return statement.optionalInt64(0).map(Instant.init(nanoseconds:))
    }
}

// MARK: Writing effects

extension PartitionStore {
    /// Writes a batch's effects; call inside the batch's transaction.
    func write(_ effects: BatchEffects) throws {
        let st = statements
        for (userID, write) in effects.profiles {
            if write.whole { try self.write(write.profile, of: userID) } else { try writeTotals(write.profile, of: userID) }
        }
        var touchedDays: Set<DayNumber> = []
        for day in effects.days {
            if day.delta != DayAggregate() { touchedDays.insert(day.day) }
            st.addDay.reset()
            st.addDay.bind(1, day.userID)
            st.addDay.bind(2, Int64(day.day))
            st.addDay.bind(3, day.delta.spendCents)
            st.addDay.bind(4, day.delta.activities)
            st.addDay.bind(5, day.delta.activeMicros)
            st.addDay.bind(6, blob: day.evidence?.encoded)
            try st.addDay.run()
        }
        for day in touchedDays { try bumpVersion(of: day) }
        for write in effects.metricDays {
            if write.delta != 0 {
                let add = st.addMetricDay.reset()
                add.bind(1, write.userID)
                add.bind(2, Int64(write.day))
                add.bind(3, write.key.rawValue)
                add.bind(4, write.delta)
                try add.run()
            }
            for value in write.values {
                let insert = st.insertMetricValue.reset()
                insert.bind(1, write.userID)
                insert.bind(2, Int64(write.day))
                insert.bind(3, write.key.rawValue)
                insert.bind(4, blob: MetricCodec.encode(value))
                try insert.run()
            }
        }
        for membership in effects.memberships {
            let statement = membership.contributions == nil ? st.deleteMembership.reset() : st.upsertMembership.reset()
            statement.bind(1, membership.userID)
            statement.bind(2, membership.segment)
            if let contributions = membership.contributions { statement.bind(3, blob: ContributionCodec.encode(contributions)) }
            try statement.run()
        }
        for (userID, due) in effects.timers {
            let statement = due == nil ? st.deleteTimer.reset() : st.upsertTimer.reset()
            statement.bind(1, userID)
            if let due { statement.bind(2, due.nanoseconds) }
            try statement.run()
        }
        for (userID, events) in effects.pending {
            let statement = events.isEmpty ? st.deletePending.reset() : st.upsertPending.reset()
            statement.bind(1, userID)
            if !events.isEmpty { statement.bind(2, blob: PendingEventCodec.encode(events)) }
            try statement.run()
        }
        for change in effects.history {
            let insert = st.insertHistory.reset()
            insert.bind(1, change.userID)
            insert.bind(2, change.segment)
            insert.bind(3, change.entered ? 1 : 0)
            insert.bind(4, change.asOf.nanoseconds)
            insert.bind(5, change.cause.rawValue)
            try insert.run()
        }
        for message in effects.messages {
            try outboxWriter.append(topic: message.topic, key: message.key, value: message.tombstone ? nil : message.value)
        }
        for (topic, next) in effects.outcome.nextOffsets {
            st.upsertOffset.reset()
            st.upsertOffset.bind(1, topic)
            st.upsertOffset.bind(2, Int64(partition))
            st.upsertOffset.bind(3, next)
            try st.upsertOffset.run()
        }
        var partials = effects.partials
        try writeChangedPartials(&partials)
        if let watermark = effects.watermark {
            if let clock = watermark.clock { try putMeta("clock_now", clock.nanoseconds) }
            if let events = watermark.events { try putMeta("watermark_events", events.nanoseconds) }
        }
        for (topic, time) in effects.eventTimes { try putMeta("event_time:" + topic, time.nanoseconds) }
    }

    /// A day's sums changed: cached bucket totals of it are stale from now on.
    func bumpVersion(of day: DayNumber) throws {
        let bump = statements.bumpDayVersion.reset()
        bump.bind(1, Int64(day))
        try bump.run()
    }

    func write(_ profile: UserProfile, of userID: String) throws {
        let upsert = statements.upsertProfile.reset()
        upsert.bind(1, userID)
        upsert.bind(2, profile.signupAt?.nanoseconds)
        upsert.bind(3, profile.lastActivityAt?.nanoseconds)
        upsert.bind(4, profile.lifetimeSpendCents)
        upsert.bind(5, profile.lifetimeActivities)
        upsert.bind(6, profile.lifetimeActiveMicros)
        upsert.bind(7, blob: ProfileCodec.encodeInstants(profile.activityBeforeSignup))
        upsert.bind(8, ProfileCodec.encodeAttributes(profile.attributes))
        upsert.bind(9, ProfileCodec.encodeAccounts(profile.accounts))
        upsert.bind(10, blob: MetricCodec.encode(profile.metrics.totals))
        try upsert.run()
    }

    func writeTotals(_ profile: UserProfile, of userID: String) throws {
        let update = statements.updateProfileTotals.reset()
        update.bind(1, profile.lastActivityAt?.nanoseconds)
        update.bind(2, profile.lifetimeSpendCents)
        update.bind(3, profile.lifetimeActivities)
        update.bind(4, profile.lifetimeActiveMicros)
        update.bind(5, blob: MetricCodec.encode(profile.metrics.totals))
        update.bind(6, userID)
        try update.run()
    }

    /// Writes the partials changed in this transaction. Totals are stored bit for bit.
    func writeChangedPartials(_ partials: inout KPIPartials) throws {
        for key in partials.takeChanged() {
            if partials.values[key] == nil, SegmentVolatility.day(of: key) != nil {
                // A day's membership counts, two days on: gone, not kept as zero.
                let delete = try db.prepare("DELETE FROM kpi_partials WHERE segment = ? AND kpi = ?")
                delete.bind(1, key.segment)
                delete.bind(2, key.kpi)
                try delete.run()
                continue
            }
            let value = partials.values[key] ?? KPIPartial()
            let statement = statements.upsertPartial.reset()
            statement.bind(1, key.segment)
            statement.bind(2, key.kpi)
            statement.bind(3, value.counted)
            statement.bind(4, Int64(bitPattern: value.total.bitPattern))
            try statement.run()
        }
    }

    func putMeta(_ key: String, _ value: Int64) throws {
        let statement = statements.setMeta.reset()
        statement.bind(1, key)
        statement.bind(2, value)
        try statement.run()
    }

    /// Drops the evidence of days no admissible event can fall on any more, at most once per day
    /// of event time, and the rows that held only evidence: days before the day of `W − horizon`,
    /// where W is the pair's event watermark (the one the horizon admits by). Events of
    /// pruned days are rejected from then on (`evidenceFloor`), so no policy here can make one
    /// count twice. A range of the day index from where the last prune stopped: never a table scan.
    func pruneEvidenceIfDue(watermark: Instant) throws {
        let cutoffDay = calendar.day(of: watermark.adding(seconds: -horizon.seconds))
        let prunedBefore = try meta("evidence_pruned_before_day").map { DayNumber($0) }
        if let prunedBefore, prunedBefore >= cutoffDay { return }
        let from = Int64(prunedBefore ?? DayNumber(Int32.min))
        let clear = try db.prepare("UPDATE user_days SET evidence = NULL WHERE day >= ? AND day < ? AND evidence IS NOT NULL")
        clear.bind(1, from)
        clear.bind(2, Int64(cutoffDay))
        try clear.run()
        let empty = try db.prepare("""
            DELETE FROM user_days WHERE day >= ? AND day < ? AND spend_cents = 0 AND activities = 0 AND active_us = 0
            """)
        empty.bind(1, from)
        empty.bind(2, Int64(cutoffDay))
        try empty.run()
        try putMeta("evidence_pruned_before_day", Int64(cutoffDay))
        // Membership history is kept as long as the evidence, at least 30 days of event time.
        let history = try db.prepare("DELETE FROM membership_history WHERE as_of < ?")
        history.bind(1, watermark.adding(seconds: -max(horizon.seconds, Self.historyRetentionSeconds)).nanoseconds)
        try history.run()
    }

    /// How long each user's membership history is kept, at least (event time).
    static let historyRetentionSeconds: Int64 = 30 * 86_400
}
