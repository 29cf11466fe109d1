import SegmenterCore
import SQLite

extension StateReader {
    /// What the state holds about a user's time line: their recent membership changes as
    /// published (oldest first) and their events still waiting for the pair's clock.
    public struct UserTimeline: Sendable {
        public var history: [MembershipChange] = []
        /// The waiting events' instants, ascending.
        public var waiting: [Instant] = []
    }

    /// Per partition, how many events wait for its pair's clock to reach them (`inspect state`).
    public func waitingEvents() throws -> [Int32: Int] {
        var counts: [Int32: Int] = [:]
        for (number, db) in partitions {
            let table = try db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'pending_events'")
            guard try table.step(), table.int64(0) == 1 else { continue }
            let rows = try db.prepare("SELECT user_id, events FROM pending_events")
            while try rows.step() {
                counts[number, default: 0] += try PendingEventCodec.decode(rows.blob(1) ?? [], userID: rows.string(0)!).count
            }
        }
        return counts
    }

    /// The last `limit` changes published for `userID` in `partition`'s database, and their waiting events.
    public func timeline(of userID: String, partition: Int32, limit: Int = 20) throws -> UserTimeline {
        guard let db = partitions.first(where: { $0.0 == partition })?.1 else { return UserTimeline() }
        var timeline = UserTimeline()
        // A state directory not yet opened by this release has neither table.
        let tables = try db.prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('membership_history', 'pending_events')")
        guard try tables.step(), tables.int64(0) == 2 else { return timeline }
        let history = try db.prepare("""
            SELECT segment, entered, as_of, cause FROM membership_history WHERE user_id = ? ORDER BY as_of DESC, rowid DESC LIMIT ?
            """)
        history.bind(1, userID)
        history.bind(2, Int64(limit))
        while try history.step() {
            timeline.history.append(MembershipChange(userID: userID, segment: history.string(0)!, entered: history.int64(1) == 1,
                                                     asOf: Instant(nanoseconds: history.int64(2)),
                                                     cause: ChangeCause(rawValue: history.string(3)!) ?? .event))
        }
        timeline.history.reverse()
        let pending = try db.prepare("SELECT events FROM pending_events WHERE user_id = ?")
        pending.bind(1, userID)
        if try pending.step() { timeline.waiting = try PendingEventCodec.decode(pending.blob(0) ?? [], userID: userID).map(\.ts).sorted() }
        return timeline
    }
}
