import SegmenterCore

/// A database with an `outbox` table (id, topic, key, value, created_at) that the relay drains.
public protocol OutboxSource: AnyObject {
    var outboxDatabase: SQLiteConnection { get }
    /// The greatest outbox id this source may hold (it may be a rolled-back one): the relay skips
    /// a source whose rows up to here are produced, instead of querying every file every pump.
    var outboxHighWater: Int64 { get }
}

/// Where an outbox starts: its greatest stored id, or 0.
func storedOutboxHighWater(_ db: SQLiteConnection) throws -> Int64 {
    let statement = try db.prepare("SELECT coalesce(max(id), 0) FROM outbox")
    _ = try statement.step()
    return statement.int64(0)
}

extension OutboxSource {
    /// Rows after `afterID`, oldest first.
    public func outbox(after afterID: Int64, limit: Int) throws -> [OutboxMessage] {
        let statement = try outboxDatabase.prepare("SELECT id, topic, key, value FROM outbox WHERE id > ? ORDER BY id LIMIT ?")
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
        let db = outboxDatabase
        try db.transaction {
            let delete = try db.prepare("DELETE FROM outbox WHERE id = ?")
            for id in ids {
                delete.reset()
                delete.bind(1, id)
                try delete.run()
            }
        }
    }

    /// When the oldest waiting row was committed (wall clock), if any.
    public func outboxOldest() throws -> Instant? {
        let statement = try outboxDatabase.prepare("SELECT created_at FROM outbox ORDER BY id LIMIT 1")
        return try statement.step() ? Instant(nanoseconds: statement.int64(0)) : nil
    }

    /// Rows in the table (each file's outbox stays small: the relay deletes what Kafka took).
    public func outboxDepth() throws -> Int {
        let statement = try outboxDatabase.prepare("SELECT count(*) FROM outbox")
        _ = try statement.step()
        return Int(statement.int64(0))
    }
}

extension PartitionStore: OutboxSource {
    public var outboxDatabase: SQLiteConnection { db }
}

extension KPIPublisher: OutboxSource {
    public var outboxDatabase: SQLiteConnection { db }
}
