import Foundation
import SegmenterCore

/// What segment evaluation needs besides the state: the definitions and where changes go.
public struct SegmentSetup: Sendable {
    public var catalog: SegmentCatalog
    public var membershipTopic: String
    public init(catalog: SegmentCatalog = SegmentCatalog(), membershipTopic: String = "segment-membership") {
        self.catalog = catalog
        self.membershipTopic = membershipTopic
    }
}

/// Why a user's membership is being re-evaluated; published as `cause` (SPEC §5).
public enum ChangeCause: String, Sendable {
    case event, time, config, reconciliation
}

/// Prepared statements for membership, timers and KPI partials.
final class SegmentStatements {
    let selectDays: Statement
    let selectMemberships: Statement
    let upsertMembership: Statement
    let deleteMembership: Statement
    let upsertTimer: Statement
    let deleteTimer: Statement
    let selectDue: Statement
    let upsertPartial: Statement
    let selectEarliestTimer: Statement

    init(_ db: SQLiteConnection) throws {
        selectDays = try db.prepare("SELECT day, spend_cents, activities, active_us FROM user_days WHERE user_id = ? AND day >= ?")
        selectMemberships = try db.prepare("SELECT segment, contributions FROM memberships WHERE user_id = ?")
        upsertMembership = try db.prepare("INSERT OR REPLACE INTO memberships (user_id, segment, contributions) VALUES (?, ?, ?)")
        deleteMembership = try db.prepare("DELETE FROM memberships WHERE user_id = ? AND segment = ?")
        upsertTimer = try db.prepare("INSERT OR REPLACE INTO timers (user_id, due) VALUES (?, ?)")
        deleteTimer = try db.prepare("DELETE FROM timers WHERE user_id = ?")
        selectDue = try db.prepare("SELECT user_id FROM timers WHERE due <= ? ORDER BY due LIMIT 10000")
        upsertPartial = try db.prepare("INSERT OR REPLACE INTO kpi_partials (segment, kpi, counted, total_bits) VALUES (?, ?, ?, ?)")
        selectEarliestTimer = try db.prepare("SELECT min(due) FROM timers")
    }
}

/// Contributions as stored: 9 bytes per KPI, a presence byte and the `Double`'s bits, so a
/// stored contribution subtracts exactly what was added, and decoding costs no parsing.
enum ContributionCodec {
    static func encode(_ values: [Double?]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 9)
        for value in values {
            bytes.append(value == nil ? 0 : 1)
            withUnsafeBytes(of: (value ?? 0).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> [Double?] {
        stride(from: 0, to: bytes.count - 8, by: 9).map { start in
            guard bytes[start] == 1 else { return nil }
            var bits: UInt64 = 0
            for k in 0..<8 { bits |= UInt64(bytes[start + 1 + k]) << (8 * k) }
            return Double(bitPattern: bits)
        }
    }
}

/// What re-evaluation needs of a user besides the profile, kept in memory between batches so a
/// streaming batch does not re-read it: the days any window can reach, the stored memberships
/// with their contributions, and the armed timer.
struct SegmentState {
    var days: [DayNumber: DayAggregate]
    var memberships: [String: [Double?]]
    var due: Instant?
}

/// The segment side of one transaction: partials and user states as they will be once it commits.
struct SegmentWork {
    var partials: KPIPartials
    var states: [String: SegmentState] = [:]
}

extension PartitionStore {
    /// Per-day sums of `userID` from the first day any window can reach at `now`.
    func days(of userID: String, now: Instant) throws -> [DayNumber: DayAggregate] {
        let firstDay = calendar.day(of: now) - DayNumber(segments.catalog.longestWindow - 1)
        return try StateReading.days(of: userID, from: firstDay, using: segmentStatements.selectDays)
    }

    /// The user's stored memberships: segment → KPI contributions.
    func memberships(of userID: String) throws -> [String: [Double?]] {
        let statement = segmentStatements.selectMemberships.reset()
        statement.bind(1, userID)
        defer { statement.reset() }
        var result: [String: [Double?]] = [:]
        while try statement.step() { result[statement.string(0)!] = ContributionCodec.decode(statement.blob(1) ?? []) }
        return result
    }

    /// Re-evaluates one user at `now`: writes membership differences (and their outbox rows),
    /// updates KPI partials by difference, and re-arms the user's timer. Call inside a transaction.
    /// - Parameter rebuilding: the partials are being rebuilt from empty (config change), so old
    ///   contributions are not subtracted.
    /// - Parameter batchDays: the user's day-sum increments from the batch being committed:
    ///   already in SQLite, not yet in the committed cache.
    /// - Returns: the number of published membership changes.
    @discardableResult
    /// - Parameter restate: publish the user's state in every segment, changed or not (see `restateUntil`).
    func reevaluate(_ userID: String, profile: UserProfile, batchDays: [DayNumber: DayAggregate] = [:], now: Instant, cause: ChangeCause,
                    work: inout SegmentWork, rebuilding: Bool = false, restate: Bool = false) throws -> Int {
        let catalog = segments.catalog
        var state: SegmentState
        var knownDue = true
        if let pending = work.states[userID] {
            state = pending
        } else if !rebuilding, var committed = cachedSegmentState(of: userID) {
            for (day, delta) in batchDays { committed.days[day, default: DayAggregate()] += delta }
            state = committed
        } else {
            state = SegmentState(days: try days(of: userID, now: now), memberships: try memberships(of: userID), due: nil)
            knownDue = false
        }
        let firstDay = calendar.day(of: now) - DayNumber(catalog.longestWindow - 1)
        if state.days.keys.contains(where: { $0 < firstDay }) { state.days = state.days.filter { $0.key >= firstDay } }
        let evaluation = catalog.evaluate(profile: profile, days: state.days, now: now, calendar: calendar)
        let stored = state.memberships
        var published = 0
        let st = segmentStatements
        // The segments the user is in now, then those they were in and left.
        for segment in Array(evaluation.segments) + stored.keys.filter({ !evaluation.segments.contains($0) }) {
            let old = stored[segment]
            let new = evaluation.contributions[segment]
            work.partials.replace(segment: segment, kpis: catalog.kpis(for: segment), old: rebuilding ? nil : old, new: new)
            if let new {
                if old != new {
                    st.upsertMembership.reset()
                    st.upsertMembership.bind(1, userID)
                    st.upsertMembership.bind(2, segment)
                    st.upsertMembership.bind(3, blob: ContributionCodec.encode(new))
                    try st.upsertMembership.run()
                }
            } else {
                st.deleteMembership.reset()
                st.deleteMembership.bind(1, userID)
                st.deleteMembership.bind(2, segment)
                try st.deleteMembership.run()
            }
            if (old == nil) != (new == nil), segment != SegmentCatalog.allSegment, !restate {
                try publishMembership(userID, segment: segment, member: new != nil, now: now, cause: cause)
                published += 1
            }
        }
        if restate {
            for segment in catalog.segmentNames where segment != SegmentCatalog.allSegment {
                try publishMembership(userID, segment: segment, member: evaluation.contributions[segment] != nil, now: now, cause: cause)
                published += 1
            }
        }
        defer {
            state.memberships = evaluation.contributions
            state.due = evaluation.nextChange
            work.states[userID] = state
        }
        if knownDue && state.due == evaluation.nextChange { return published }
        if let due = evaluation.nextChange {
            st.upsertTimer.reset()
            st.upsertTimer.bind(1, userID)
            st.upsertTimer.bind(2, due.nanoseconds)
            try st.upsertTimer.run()
        } else {
            st.deleteTimer.reset()
            st.deleteTimer.bind(1, userID)
            try st.deleteTimer.run()
        }
        return published
    }

    /// Re-evaluates the users whose timers are due at `now` (cause `time`). The work grows with
    /// the number of due timers, not with the number of users.
    /// - Parameter changedProfile: a profile the transaction changed (newer than the committed
    ///   cache), if it did.
    func fireDueTimers(now: Instant, work: inout SegmentWork,
                       changedProfile: (String) -> UserProfile? = { _ in nil }) throws -> (fired: Int, changes: Int) {
        var fired = 0
        var changes = 0
        while true {
            let select = segmentStatements.selectDue.reset()
            select.bind(1, now.nanoseconds)
            var due: [String] = []
            while try select.step() { due.append(select.string(0)!) }
            select.reset()
            if due.isEmpty { return (fired, changes) }
            for userID in due {
                guard let profile = try changedProfile(userID) ?? self.profile(of: userID) else {
                    segmentStatements.deleteTimer.reset()
                    segmentStatements.deleteTimer.bind(1, userID)
                    try segmentStatements.deleteTimer.run()
                    continue
                }
                changes += try reevaluate(userID, profile: profile, now: now, cause: .time, work: &work)
                fired += 1
            }
        }
    }

    /// Armed timers (a count over the index: call now and then, not per batch).
    public func timerCount() throws -> Int {
        let statement = try db.prepare("SELECT count(*) FROM timers")
        _ = try statement.step()
        return Int(statement.int64(0))
    }

    /// The earliest due timer, to skip clock steps that fire nothing.
    func earliestTimer() throws -> Instant? {
        let statement = segmentStatements.selectEarliestTimer.reset()
        defer { statement.reset() }
        _ = try statement.step()
        return statement.optionalInt64(0).map(Instant.init(nanoseconds:))
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

    /// Writes the partials changed in this transaction. Totals are stored bit for bit.
    func writeChangedPartials(_ partials: inout KPIPartials) throws {
        for key in partials.takeChanged() {
            let value = partials.values[key] ?? KPIPartial()
            let statement = segmentStatements.upsertPartial.reset()
            statement.bind(1, key.segment)
            statement.bind(2, key.kpi)
            statement.bind(3, value.counted)
            statement.bind(4, Int64(bitPattern: value.total.bitPattern))
            try statement.run()
        }
    }

    /// After a change of segment or KPI definitions, re-evaluates every user once (cause
    /// `config`) and rebuilds the partials from nothing. One transaction.
    /// A SPEC §5 membership message, built directly (this runs for every change).
    private func publishMembership(_ userID: String, segment: String, member: Bool, now: Instant, cause: ChangeCause) throws {
        let message = "{\"user_id\":\(JSONText.quote(userID)),\"segment\":\(JSONText.quote(segment)),\"change\":\""
            + (member ? "enter" : "exit") + "\",\"as_of\":\"\(now)\",\"cause\":\"\(cause.rawValue)\"}"
        try enqueue(topic: segments.membershipTopic, key: Array(userID.utf8), value: Array(message.utf8), at: now)
    }

    func reevaluateEveryone(now: Instant) throws -> Int {
        var work = SegmentWork(partials: KPIPartials())
        var changes = 0
        try db.transaction {
            try db.execute("DELETE FROM kpi_partials")
            // Segments no longer defined: their rows go (exits are published below per user).
            let users = try db.prepare("SELECT user_id, \(StateReading.profileColumns) FROM users")
            while try users.step() {
                let userID = users.string(0)!
                let profile = try StateReading.profile(from: users, first: 1)
                changes += try reevaluate(userID, profile: profile, now: now, cause: .config, work: &work, rebuilding: true)
            }
            try writeChangedPartials(&work.partials)
            try putText("catalog", segments.catalog.fingerprint)
        }
        partials = work.partials
        forgetSegmentStates()
        return changes
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
        let index = segments.catalog.kpis(for: segment).firstIndex { $0.name == kpi }
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
