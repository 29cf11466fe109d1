import Foundation
import SegmenterCore

/// One input message with the decoder's verdict, ready to be committed.
public struct DecodedRecord: Sendable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let key: [UInt8]?
    public let payload: [UInt8]
    public let decoded: Result<UserEvent, DecodeFailure>

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, payload: [UInt8],
                decoded: Result<UserEvent, DecodeFailure>) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.payload = payload
        self.decoded = decoded
    }
}

/// What one committed batch did.
public struct BatchOutcome: Sendable, Equatable {
    public var applied = 0
    public var duplicates = 0
    public var deadLettered = 0
    /// Users whose state changed, for segment evaluation.
    public var touchedUsers: Set<String> = []
    /// The next offset to consume per input topic, as stored by this commit.
    public var nextOffsets: [String: Int64] = [:]
    public init() {}
}

/// An outbox row waiting to be produced.
public struct OutboxMessage: Sendable {
    public let id: Int64
    public let topic: String
    public let key: [UInt8]?
    public let value: [UInt8]
}

/// The state of one input partition number (both input topics, co-partitioned) in one SQLite file.
///
/// One file per partition lets a partition's state move with it when the group rebalances, and
/// keeps each commit's page set small. Dedupe spans both topics per user, which is why the two
/// topics must be co-partitioned (same partition count, keyed by `user_id`).
public final class PartitionStore: @unchecked Sendable {
    public let partition: Int32
    let db: SQLiteConnection
    public let calendar: DayCalendar
    public let dedupeHorizonSeconds: Int64

    /// Profiles as last committed. Filled only after a successful COMMIT, so a failed batch
    /// can never leave the cache ahead of the database.
    private var profileCache: [String: UserProfile] = [:]
    private let profileCacheCapacity: Int

    private let insertSeen: Statement
    private let selectProfile: Statement
    private let upsertProfile: Statement
    private let updateProfileTotals: Statement
    private let addDay: Statement
    private let upsertOffset: Statement
    private let insertOutbox: Statement
    private let setMeta: Statement

    public static func fileName(partition: Int32) -> String { String(format: "partition-%04d.sqlite", partition) }

    public init(directory: URL, partition: Int32, calendar: DayCalendar, dedupeHorizonSeconds: Int64 = 7 * 86_400,
                profileCacheCapacity: Int = 200_000) throws {
        self.partition = partition
        self.calendar = calendar
        self.dedupeHorizonSeconds = dedupeHorizonSeconds
        self.profileCacheCapacity = profileCacheCapacity
        db = try SQLiteConnection(path: directory.appendingPathComponent(Self.fileName(partition: partition)).path)
        // WAL: readers (inspect, export, the outbox relay) never block the writer. NORMAL sync
        // survives a process crash; on power loss the last commits roll back together with
        // their offsets, so the batch is simply consumed again.
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY")
        try Schema.migrate(db)
        insertSeen = try db.prepare("INSERT OR IGNORE INTO seen_events (user_id, event_id, ts) VALUES (?, ?, ?)")
        selectProfile = try db.prepare("""
            SELECT signup_at, last_activity_at, lifetime_spend_cents, lifetime_activities, lifetime_active_us,
                   activity_before_signup, attributes, accounts FROM users WHERE user_id = ?
            """)
        upsertProfile = try db.prepare("""
            INSERT OR REPLACE INTO users (user_id, signup_at, last_activity_at, lifetime_spend_cents, lifetime_activities,
                lifetime_active_us, activity_before_signup, attributes, accounts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        updateProfileTotals = try db.prepare("""
            UPDATE users SET last_activity_at = ?, lifetime_spend_cents = ?, lifetime_activities = ?, lifetime_active_us = ?
            WHERE user_id = ?
            """)
        addDay = try db.prepare("""
            INSERT INTO user_days (user_id, day, spend_cents, activities, active_us) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (user_id, day) DO UPDATE SET spend_cents = spend_cents + excluded.spend_cents,
                activities = activities + excluded.activities, active_us = active_us + excluded.active_us
            """)
        upsertOffset = try db.prepare("""
            INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?)
            ON CONFLICT (topic, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)
            """)
        insertOutbox = try db.prepare("INSERT INTO outbox (topic, key, value, created_at) VALUES (?, ?, ?, ?)")
        setMeta = try db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")
    }

    // MARK: Reads

    /// The next offset to consume per input topic, as committed with the state.
    public func storedOffsets() throws -> [String: Int64] {
        let statement = try db.prepare("SELECT topic, next_offset FROM offsets WHERE partition = ?")
        statement.bind(1, Int64(partition))
        var result: [String: Int64] = [:]
        while try statement.step() { result[statement.string(0)!] = statement.int64(1) }
        return result
    }

    /// The greatest event `ts` applied in this partition, if any.
    public func clock() throws -> Instant? { try meta("clock_now").map(Instant.init(nanoseconds:)) }

    func meta(_ key: String) throws -> Int64? {
        let statement = try db.prepare("SELECT value FROM meta WHERE key = ?")
        statement.bind(1, key)
        return try statement.step() ? statement.int64(0) : nil
    }

    public func profile(of userID: String) throws -> UserProfile? {
        if let cached = profileCache[userID] { return cached }
        return try StateReading.profile(of: userID, using: selectProfile.reset())
    }

    // MARK: The unit of truth

    /// Commits one batch: state changes, dead letters, offsets and clock in one transaction.
    ///
    /// 1. For each record in offset order: an invalid one becomes a DLQ outbox row; a valid one
    ///    is checked against the dedupe set and, if new, applied to its user's profile.
    /// 2. The touched profiles and per-day sums are written.
    /// 3. The next offsets and the clock are stored.
    /// 4. COMMIT. Only then does the in-memory profile cache learn the new profiles.
    /// - Parameter extraWork: runs inside the transaction after the state is written (segments, KPIs).
    public func commit(_ records: [DecodedRecord], deadLetterTopic: String, receivedAt: Instant,
                       extraWork: ((BatchOutcome) throws -> Void)? = nil) throws -> BatchOutcome {
        var outcome = BatchOutcome()
        var profiles: [String: UserProfile] = [:]
        /// Users whose row must be written whole: new ones, or whose attributes, accounts or
        /// pre-signup activity changed. The rest only move their totals (the common case).
        var rewrite: Set<String> = []
        var dayDeltas: [String: [DayNumber: DayAggregate]] = [:]
        profiles.reserveCapacity(records.count)
        dayDeltas.reserveCapacity(records.count)
        var nextOffsets: [String: Int64] = [:]
        var batchNow = try clock()
        let batchStartNow = batchNow

        try db.transaction {
            for record in records {
                nextOffsets[record.topic] = max(nextOffsets[record.topic] ?? 0, record.offset + 1)
                switch record.decoded {
                case let .failure(failure):
                    let letter = DeadLetter.json(reason: failure.reason, sourceTopic: record.topic, partition: record.partition,
                                                 offset: record.offset, payload: record.payload, receivedAt: receivedAt)
                    try enqueue(topic: deadLetterTopic, key: record.key, value: Array(letter.utf8), at: receivedAt)
                    outcome.deadLettered += 1
                case let .success(event):
                    insertSeen.reset()
                    insertSeen.bind(1, event.userID)
                    insertSeen.bind(2, event.eventID)
                    insertSeen.bind(3, event.ts.nanoseconds)
                    try insertSeen.run()
                    guard db.changes == 1 else { outcome.duplicates += 1; continue }
                    var profile: UserProfile
                    if let pending = profiles[event.userID] {
                        profile = pending
                    } else if let stored = try self.profile(of: event.userID) {
                        profile = stored
                    } else {
                        profile = UserProfile()
                        rewrite.insert(event.userID)
                    }
                    let beforeSignupCount = profile.activityBeforeSignup.count
                    if let change = profile.apply(event, calendar: calendar) {
                        dayDeltas[event.userID, default: [:]][change.day, default: DayAggregate()] += change.delta
                    }
                    switch event.body {
                    case .billing: break
                    case .activity where profile.activityBeforeSignup.count == beforeSignupCount: break
                    default: rewrite.insert(event.userID)
                    }
                    profiles[event.userID] = profile
                    outcome.applied += 1
                    if batchNow == nil || event.ts > batchNow! { batchNow = event.ts }
                }
            }
            for (userID, profile) in profiles {
                if rewrite.contains(userID) { try write(profile, of: userID) } else { try writeTotals(profile, of: userID) }
            }
            for (userID, days) in dayDeltas {
                for (day, delta) in days {
                    addDay.reset()
                    addDay.bind(1, userID)
                    addDay.bind(2, Int64(day))
                    addDay.bind(3, delta.spendCents)
                    addDay.bind(4, delta.activities)
                    addDay.bind(5, delta.activeMicros)
                    try addDay.run()
                }
            }
            for (topic, next) in nextOffsets {
                upsertOffset.reset()
                upsertOffset.bind(1, topic)
                upsertOffset.bind(2, Int64(partition))
                upsertOffset.bind(3, next)
                try upsertOffset.run()
            }
            if let batchNow, batchNow != batchStartNow {
                try putMeta("clock_now", batchNow.nanoseconds)
                try pruneSeenEventsIfDue(now: batchNow)
            }
            outcome.touchedUsers = Set(profiles.keys)
            outcome.nextOffsets = nextOffsets
            try extraWork?(outcome)
        }
        if profileCache.count + profiles.count > profileCacheCapacity { profileCache.removeAll(keepingCapacity: true) }
        profileCache.merge(profiles) { $1 }
        return outcome
    }

    /// Adds an outbox row; call inside a transaction.
    public func enqueue(topic: String, key: [UInt8]?, value: [UInt8], at instant: Instant) throws {
        insertOutbox.reset()
        insertOutbox.bind(1, topic)
        insertOutbox.bind(2, blob: key)
        insertOutbox.bind(3, blob: value)
        insertOutbox.bind(4, instant.nanoseconds)
        try insertOutbox.run()
    }

    private func write(_ profile: UserProfile, of userID: String) throws {
        upsertProfile.reset()
        upsertProfile.bind(1, userID)
        upsertProfile.bind(2, profile.signupAt?.nanoseconds)
        upsertProfile.bind(3, profile.lastActivityAt?.nanoseconds)
        upsertProfile.bind(4, profile.lifetimeSpendCents)
        upsertProfile.bind(5, profile.lifetimeActivities)
        upsertProfile.bind(6, profile.lifetimeActiveMicros)
        upsertProfile.bind(7, blob: ProfileCodec.encodeInstants(profile.activityBeforeSignup))
        upsertProfile.bind(8, ProfileCodec.encodeAttributes(profile.attributes))
        upsertProfile.bind(9, ProfileCodec.encodeAccounts(profile.accounts))
        try upsertProfile.run()
    }

    private func writeTotals(_ profile: UserProfile, of userID: String) throws {
        updateProfileTotals.reset()
        updateProfileTotals.bind(1, profile.lastActivityAt?.nanoseconds)
        updateProfileTotals.bind(2, profile.lifetimeSpendCents)
        updateProfileTotals.bind(3, profile.lifetimeActivities)
        updateProfileTotals.bind(4, profile.lifetimeActiveMicros)
        updateProfileTotals.bind(5, userID)
        try updateProfileTotals.run()
    }

    private func putMeta(_ key: String, _ value: Int64) throws {
        setMeta.reset()
        setMeta.bind(1, key)
        setMeta.bind(2, value)
        try setMeta.run()
    }

    /// Forgets event ids older than the dedupe horizon, at most once per day of event time
    /// (the delete scans the table, so doing it every batch would cost more than it saves).
    private func pruneSeenEventsIfDue(now: Instant) throws {
        let lastPrune = try meta("seen_pruned_at") ?? 0
        guard now.nanoseconds - lastPrune >= 86_400 * Instant.nanosPerSecond else { return }
        let cutoff = now.nanoseconds - dedupeHorizonSeconds * Instant.nanosPerSecond
        let delete = try db.prepare("DELETE FROM seen_events WHERE ts < ?")
        delete.bind(1, cutoff)
        try delete.run()
        try putMeta("seen_pruned_at", now.nanoseconds)
    }

    // MARK: Outbox relay

    /// Rows after `afterID`, oldest first.
    public func outbox(after afterID: Int64, limit: Int) throws -> [OutboxMessage] {
        let statement = try db.prepare("SELECT id, topic, key, value FROM outbox WHERE id > ? ORDER BY id LIMIT ?")
        statement.bind(1, afterID)
        statement.bind(2, Int64(limit))
        var rows: [OutboxMessage] = []
        while try statement.step() {
            rows.append(OutboxMessage(id: statement.int64(0), topic: statement.string(1)!, key: statement.blob(2),
                                      value: statement.blob(3) ?? []))
        }
        return rows
    }

    /// Deletes rows whose delivery the broker acknowledged.
    public func deleteOutbox(ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        try db.transaction {
            let delete = try db.prepare("DELETE FROM outbox WHERE id = ?")
            for id in ids {
                delete.reset()
                delete.bind(1, id)
                try delete.run()
            }
        }
    }

    public func outboxDepth() throws -> Int {
        let statement = try db.prepare("SELECT count(*) FROM outbox")
        _ = try statement.step()
        return Int(statement.int64(0))
    }
}
