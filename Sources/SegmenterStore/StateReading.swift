import Foundation
import SegmenterCore
import SQLite

/// Row-to-value reads shared by the writer and the read-only `StateReader`.
enum StateReading {
    static let profileColumns = """
        signup_at, last_activity_at, lifetime_spend_cents, lifetime_activities, lifetime_active_us,
        activity_before_signup, attributes, accounts, metrics
        """

    /// Reads a profile from a statement positioned on `profileColumns` starting at `first`.
    static func profile(from statement: Statement, first: Int32 = 0) throws -> UserProfile {
        var profile = UserProfile()
        profile.signupAt = statement.optionalInt64(first).map(Instant.init(nanoseconds:))
        profile.lastActivityAt = statement.optionalInt64(first + 1).map(Instant.init(nanoseconds:))
        profile.lifetimeSpendCents = statement.int64(first + 2)
        profile.lifetimeActivities = statement.int64(first + 3)
        profile.lifetimeActiveMicros = statement.int64(first + 4)
        profile.activityBeforeSignup = ProfileCodec.decodeInstants(statement.blob(first + 5))
        profile.attributes = try ProfileCodec.decodeAttributes(statement.string(first + 6))
        profile.accounts = try ProfileCodec.decodeAccounts(statement.string(first + 7))
        profile.metrics.totals = try MetricCodec.decode(statement.blob(first + 8))
        return profile
    }

    /// - Parameter statement: `SELECT <profileColumns> FROM users WHERE user_id = ?`, reset.
    static func profile(of userID: String, using statement: Statement) throws -> UserProfile? {
        statement.bind(1, userID)
        defer { statement.reset() }
        return try statement.step() ? profile(from: statement) : nil
    }

    /// A user's metric days from `firstDay` on (SPEC §4b): totals and distinct values in one pass.
    /// - Parameter statement: `metricDaysQuery(metrics:)`, prepared; `keys` bound to its list.
    static func metricDays(of userID: String, from firstDay: DayNumber, using statement: Statement, keys: [MetricKey] = []) throws
        -> [MetricKey: [DayNumber: MetricDay]] {
        statement.reset()
        statement.bind(1, userID)
        statement.bind(2, Int64(firstDay))
        for (index, key) in keys.enumerated() { statement.bind(Int32(index + 3), key.rawValue) }
        defer { statement.reset() }
        var days: [MetricKey: [DayNumber: MetricDay]] = [:]
        while try statement.step() {
            let day = DayNumber(statement.int64(0))
            let key = MetricKey(rawValue: statement.int64(1))
            if let total = statement.optionalInt64(2) {
                days[key, default: [:]][day, default: MetricDay()].total = total
            } else {
                days[key, default: [:]][day, default: MetricDay()].values.insert(try MetricCodec.decodeValue(statement.blob(3) ?? []))
            }
        }
        return days
    }

    /// The rows of a user's metric days: `?1` the user, `?2` the first day, then (with `metrics`)
    /// that many metric keys to read (the metrics some window reads; nil: every metric).
    static func metricDaysQuery(metrics: Int? = nil) -> String {
        let filter = metrics.map { count in " AND metric IN (" + (0..<count).map { "?\($0 + 3)" }.joined(separator: ", ") + ")" } ?? ""
        return "SELECT day, metric, total, NULL FROM user_metric_days WHERE user_id = ?1 AND day >= ?2\(filter) "
            + "UNION ALL SELECT day, metric, NULL, value FROM user_metric_values WHERE user_id = ?1 AND day >= ?2\(filter)"
    }

    /// - Parameter statement: `SELECT day, spend_cents, activities, active_us FROM user_days WHERE user_id = ? AND day >= ?`.
    static func days(of userID: String, from firstDay: DayNumber, using statement: Statement) throws -> [DayNumber: DayAggregate] {
        statement.reset()
        statement.bind(1, userID)
        statement.bind(2, Int64(firstDay))
        defer { statement.reset() }
        var days: [DayNumber: DayAggregate] = [:]
        while try statement.step() {
            let sums = DayAggregate(spendCents: statement.int64(1), activities: statement.int64(2), activeMicros: statement.int64(3))
            // A row of zeros only keeps its day's evidence (see EventEvidence).
            if sums != DayAggregate() { days[DayNumber(statement.int64(0))] = sums }
        }
        return days
    }
}

/// Read-only access to every partition database in a state directory, safe beside a running
/// `segmenter run` (WAL readers never block the writer).
public final class StateReader {
    public struct UserState {
        public let userID: String
        public let partition: Int32
        public let profile: UserProfile
        public let days: [DayNumber: DayAggregate]

        public init(userID: String, partition: Int32, profile: UserProfile, days: [DayNumber: DayAggregate]) {
            self.userID = userID
            self.partition = partition
            self.profile = profile
            self.days = days
        }
    }

    let partitions: [(Int32, SQLiteConnection)]

    /// - Parameter only: read just these partitions' databases (nil: every one in the directory).
    /// - Throws: `SQLiteError` with code 14 (`SQLITE_CANTOPEN`) when there is no state yet.
    public convenience init(directory: URL, only: Set<Int32>? = nil) throws {
        let partitions = try Self.openPartitions(directory: directory, only: only)
        guard !partitions.isEmpty else {
            throw SQLiteError(code: 14, message: "no state in \(directory.path) (no partition-*.sqlite files); has `segmenter run` consumed anything yet?", sql: nil)
        }
        self.init(partitions: partitions)
    }

    private init(partitions: [(Int32, SQLiteConnection)]) { self.partitions = partitions }

    /// The state directory's databases, or nil when there are none yet (nothing consumed, or
    /// none of `only`). A database that is there and cannot be opened throws: the HTTP API
    /// answers that as a failure with its cause, not as an empty list.
    public static func ifAny(directory: URL, only: Set<Int32>? = nil) throws -> StateReader? {
        let partitions = try openPartitions(directory: directory, only: only)
        return partitions.isEmpty ? nil : StateReader(partitions: partitions)
    }

    private static func openPartitions(directory: URL, only: Set<Int32>?) throws -> [(Int32, SQLiteConnection)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return try names.filter { $0.hasPrefix("partition-") && $0.hasSuffix(".sqlite") }.sorted().compactMap { name in
            let number = Int32(name.dropFirst("partition-".count).dropLast(".sqlite".count)) ?? -1
            guard only?.contains(number) ?? true else { return nil }
            return (number, try SQLiteConnection(path: directory.appendingPathComponent(name).path, readOnly: true))
        }
    }

    /// Metrics this state counts only from a later instant, or will once `run` starts (SPEC §4b):
    /// over every partition, the earliest such instant per metric.
    public func metricDefinitionChanges(_ metrics: MetricCatalog) throws -> [MetricDefinitionChange] {
        guard !metrics.isEmpty else { return [] }
        var byName: [String: MetricDefinitionChange] = [:]
        for (_, db) in partitions {
            let record = try db.prepare("SELECT value FROM meta_text WHERE key = ?")
            record.bind(1, MetricDefinitions.key)
            let text = try record.step() ? record.string(0) : nil
            let clock = try db.prepare("SELECT value FROM meta WHERE key = 'clock_now'")
            for change in MetricDefinitions.changes(metrics, stored: text, hasEvents: try clock.step()) {
                if let known = byName[change.name], let since = known.since, change.since.map({ $0 >= since }) ?? false { continue }
                byName[change.name] = change
            }
        }
        return metrics.metrics.compactMap { byName[$0.name] }
    }

    /// Each partition pair's clock (SPEC §3): what its users' rules and `as_of` use.
    public func pairClocks() throws -> [Int32: Instant] {
        var clocks: [Int32: Instant] = [:]
        for (number, db) in partitions {
            let statement = try db.prepare("SELECT value FROM meta WHERE key = 'clock_now'")
            if try statement.step() { clocks[number] = Instant(nanoseconds: statement.int64(0)) }
        }
        return clocks
    }

    /// The group's time as far as this directory's partitions go (the earliest pair clock):
    /// what segment and KPI views are as of.
    public func clock() throws -> Instant? { try pairClocks().values.min() }

    /// Stored next offsets per (topic, partition).
    public func offsets() throws -> [(topic: String, partition: Int32, next: Int64)] {
        try partitions.flatMap { _, db in
            let statement = try db.prepare("SELECT topic, partition, next_offset FROM offsets ORDER BY topic, partition")
            var rows: [(String, Int32, Int64)] = []
            while try statement.step() { rows.append((statement.string(0)!, Int32(statement.int64(1)), statement.int64(2))) }
            return rows
        }
    }

    /// Per partition database, the pair's time and what the dedupe horizon is measured in: its
    /// clock, its event watermark, each input topic's latest event, and where proof ends (the
    /// evidence floor of an upgraded state, and the first day whose evidence is still kept).
    public struct Horizon {
        public let partition: Int32
        public let clock: Instant?
        public let watermark: Instant?
        public let eventTimes: [String: Instant]
        public let floor: Instant?
        public let keptFromDay: DayNumber?
    }

    public func horizons() throws -> [Horizon] {
        try partitions.map { number, db in
            let statement = try db.prepare(
                "SELECT key, value FROM meta WHERE key LIKE 'event_time:%' OR key LIKE 'evidence_%' OR key IN ('clock_now', 'watermark_events')")
            var times: [String: Instant] = [:]
            var clock: Instant?, watermark: Instant?
            var floor: Instant?
            var keptFrom: DayNumber?
            while try statement.step() {
                let key = statement.string(0)!, value = statement.int64(1)
                if key.hasPrefix("event_time:") { times[String(key.dropFirst("event_time:".count))] = Instant(nanoseconds: value) }
                if key == "evidence_floor" { floor = Instant(nanoseconds: value) }
                if key == "evidence_pruned_before_day" { keptFrom = DayNumber(value) }
                if key == "clock_now" { clock = Instant(nanoseconds: value) }
                if key == "watermark_events" { watermark = Instant(nanoseconds: value) }
            }
            return Horizon(partition: number, clock: clock, watermark: watermark, eventTimes: times, floor: floor, keptFromDay: keptFrom)
        }
    }

    /// A user with their partition pair's clock, what they are evaluated at (SPEC §3); days are
    /// read from `firstDay(earliest pair clock)` on. nil: no such user, or no events applied yet.
    public func userAtPairClock(_ userID: String, firstDay: (Instant) -> DayNumber) throws -> (user: UserState, now: Instant)? {
        let clocks = try pairClocks()
        guard let earliest = clocks.values.min(), let user = try user(userID, daysFrom: firstDay(earliest)) else { return nil }
        return (user, clocks[user.partition] ?? earliest)
    }

    public func user(_ userID: String, daysFrom firstDay: DayNumber) throws -> UserState? {
        for (number, db) in partitions {
            let select = try db.prepare("SELECT \(StateReading.profileColumns) FROM users WHERE user_id = ?")
            if var profile = try StateReading.profile(of: userID, using: select) {
                try MetricDayReader(db).load(into: &profile, of: userID, from: firstDay)
                let days = try StateReading.days(of: userID, from: firstDay, using: try daysStatement(db))
                return UserState(userID: userID, partition: number, profile: profile, days: days)
            }
        }
        return nil
    }

    /// Calls `body` for every user, partition by partition, in user id order within each.
    public func forEachUser(daysFrom firstDay: DayNumber, _ body: (UserState) throws -> Void) throws {
        try forEachUser(daysFrom: firstDay, memberships: false) { user, _ in try body(user) }
    }

    /// Calls `body` for every user with the segments their stored memberships hold (`all`
    /// included): what was last published for them.
    public func forEachUserWithSegments(daysFrom firstDay: DayNumber, _ body: (UserState, Set<String>) throws -> Void) throws {
        try forEachUser(daysFrom: firstDay, memberships: true, body)
    }

    private func forEachUser(daysFrom firstDay: DayNumber, memberships: Bool, _ body: (UserState, Set<String>) throws -> Void) throws {
        for (number, db) in partitions {
            try db.execute("BEGIN")  // one consistent snapshot per partition
            defer { try? db.execute("COMMIT") }
            let users = try db.prepare("SELECT user_id, \(StateReading.profileColumns) FROM users ORDER BY user_id")
            let days = try daysStatement(db)
            let metricDays = try MetricDayReader(db)
            // Both in user id order: merged as they go, one pass over each.
            let rows = memberships ? try db.prepare("SELECT user_id, segment FROM memberships ORDER BY user_id") : nil
            var pending = try rows?.step() == true
            while try users.step() {
                let userID = users.string(0)!
                var profile = try StateReading.profile(from: users, first: 1)
                try metricDays.load(into: &profile, of: userID, from: firstDay)
                var segments: Set<String> = []
                // SQLite orders text by its bytes: compared the same way here.
                while pending, let rows, let member = rows.string(0), !userID.utf8.lexicographicallyPrecedes(member.utf8) {
                    if member == userID { segments.insert(rows.string(1)!) }
                    pending = try rows.step()
                }
                try body(UserState(userID: userID, partition: number, profile: profile,
                                   days: try StateReading.days(of: userID, from: firstDay, using: days)), segments)
            }
        }
    }

    /// The user's armed timer in `partition`, if any: when time alone next changes something.
    public func timer(of userID: String, partition: Int32) throws -> Instant? {
        guard let db = partitions.first(where: { $0.0 == partition })?.1 else { return nil }
        let statement = try db.prepare("SELECT due FROM timers WHERE user_id = ?")
        statement.bind(1, userID)
        return try statement.step() ? Instant(nanoseconds: statement.int64(0)) : nil
    }

    /// Segments of one user (`all` included).
    public func segments(of userID: String) throws -> [String] {
        try partitions.flatMap { _, db in
            let statement = try db.prepare("SELECT segment FROM memberships WHERE user_id = ? ORDER BY segment")
            statement.bind(1, userID)
            var names: [String] = []
            while try statement.step() { names.append(statement.string(0)!) }
            return names
        }
    }

    /// Every user's segments, over all partitions.
    public func allMemberships() throws -> [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        for (_, db) in partitions {
            let statement = try db.prepare("SELECT user_id, segment FROM memberships")
            while try statement.step() { result[statement.string(0)!, default: []].insert(statement.string(1)!) }
        }
        return result
    }

    /// KPI partials summed over every partition in the directory: the instance's global values.
    public func kpiPartials() throws -> [KPIKey: KPIPartial] {
        var result: [KPIKey: KPIPartial] = [:]
        for (_, db) in partitions {
            let statement = try db.prepare("SELECT segment, kpi, counted, total_bits FROM kpi_partials")
            while try statement.step() {
                result[KPIKey(segment: statement.string(0)!, kpi: statement.string(1)!), default: KPIPartial()] +=
                    KPIPartial(counted: statement.int64(2), total: Double(bitPattern: UInt64(bitPattern: statement.int64(3))))
            }
        }
        return result
    }

    /// Counts for a summary line: users, user-days, remembered event ids, outbox rows.
    public func counts() throws -> (users: Int, userDays: Int, seenEvents: Int, outbox: Int) {
        var totals = (0, 0, 0, 0)
        for (_, db) in partitions {
            func count(_ sql: String) throws -> Int {
                let statement = try db.prepare(sql)
                _ = try statement.step()
                return Int(statement.int64(0))
            }
            totals.0 += try count("SELECT count(*) FROM users")
            totals.1 += try count("SELECT count(*) FROM user_days WHERE spend_cents <> 0 OR activities <> 0 OR active_us <> 0")
            // 8 bytes per id (EventEvidence); a database not yet upgraded by `run` still has one row per id.
            totals.2 += try (try? count("SELECT coalesce(sum(length(evidence)), 0) / 8 FROM user_days")) ?? count("SELECT count(*) FROM seen_events")
            totals.3 += try count("SELECT count(*) FROM outbox")
        }
        return totals
    }

    /// Reads metric days for users that have metrics (prepared on first use).
    private final class MetricDayReader {
        let db: SQLiteConnection
        var statement: Statement?
        init(_ db: SQLiteConnection) { self.db = db }

        func load(into profile: inout UserProfile, of userID: String, from firstDay: DayNumber) throws {
            guard !profile.metrics.totals.isEmpty else { return }
            if statement == nil { statement = try db.prepare(StateReading.metricDaysQuery()) }
            profile.metrics.days = try StateReading.metricDays(of: userID, from: firstDay, using: statement!)
        }
    }

    private func daysStatement(_ db: SQLiteConnection) throws -> Statement {
        try db.prepare("SELECT day, spend_cents, activities, active_us FROM user_days WHERE user_id = ? AND day >= ?")
    }
}

/// Read-only view of the alert states the KPI publisher keeps, for `inspect alerts`.
public struct AlertStateReader {
    public struct Row {
        public let state: String
        public let pendingSince: Instant?
        public let value: Double?
        public let baseline: Double?
        /// Top contributing sub-groups of the current firing, as JSON.
        public let drillDown: String?
    }

    let path: String

    /// The publisher keeps them in partition 0's database (on the instance that owns it).
    public init(directory: URL) { path = directory.appendingPathComponent(PartitionStore.fileName(partition: 0)).path }

    public func read() throws -> [String: Row] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        let db = try SQLiteConnection(path: path, readOnly: true)
        // No table: this instance never led the KPIs. Any other failure is thrown.
        let table = try db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alert_states'")
        guard try table.step() else { return [:] }
        let statement = try db.prepare("SELECT name, state, pending_since, value_bits, baseline_bits, drill_down FROM alert_states")
        var rows: [String: Row] = [:]
        func double(_ column: Int32) -> Double? { statement.optionalInt64(column).map { Double(bitPattern: UInt64(bitPattern: $0)) } }
        while try statement.step() {
            rows[statement.string(0)!] = Row(state: statement.string(1) ?? "resolved",
                                             pendingSince: statement.optionalInt64(2).map(Instant.init(nanoseconds:)),
                                             value: double(3), baseline: double(4), drillDown: statement.string(5))
        }
        return rows
    }
}
