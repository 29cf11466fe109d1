import SegmenterCore
import SQLite

/// A database with an `outbox` table (id, topic, key, value, created_at) that the relay drains.
public protocol OutboxSource: AnyObject {
    var outboxDatabase: SQLiteConnection { get }
    /// The greatest outbox id this source may hold (it may be a rolled-back one): the relay skips
    /// a source whose rows up to here are produced, instead of querying every file every pump.
    var outboxHighWater: Int64 { get }
}

/// Appends rows to one database's outbox and remembers the greatest id written (read from the
/// file on open), so its owner can answer `outboxHighWater`. Call `append` inside a transaction.
final class OutboxWriter {
    private let db: SQLiteConnection
    private let insert: Statement
    private(set) var highWater: Int64

    init(_ db: SQLiteConnection) throws {
        self.db = db
        insert = try db.prepare("INSERT INTO outbox (topic, key, value, created_at) VALUES (?, ?, ?, ?)")
        let newest = try db.prepare("SELECT coalesce(max(id), 0) FROM outbox")
        _ = try newest.step()
        highWater = newest.int64(0)
    }

    /// Re-reads the greatest id, after rows were added other than through `append`.
    func refreshHighWater() throws {
        let newest = try db.prepare("SELECT coalesce(max(id), 0) FROM outbox")
        _ = try newest.step()
        highWater = max(highWater, newest.int64(0))
    }

    /// `created_at` is the wall clock (the outbox age metric), whatever event time the message speaks of.
    /// - Parameter value: nil: a tombstone (a NULL value, what compaction deletes a key by).
    func append(topic: String, key: [UInt8]?, value: [UInt8]?) throws {
        insert.reset()
        insert.bind(1, topic)
        insert.bind(2, blob: key)
        insert.bind(3, blob: value)
        insert.bind(4, Instant.wallClock().nanoseconds)
        try insert.run()
        highWater = db.lastInsertRowID
    }
}

extension OutboxSource {
    /// Rows after `afterID`, oldest first.
    public func outbox(after afterID: Int64, limit: Int) throws -> [OutboxMessage] {
        let statement = try outboxDatabase.prepare("SELECT id, topic, key, value FROM outbox WHERE id > ? ORDER BY id LIMIT ?")
        statement.bind(1, afterID)
        statement.bind(2, Int64(limit))
        var rows: [OutboxMessage] = []
        while try statement.step() {
            let value = statement.blob(3)
            rows.append(OutboxMessage(id: statement.int64(0), topic: statement.string(1)!, key: statement.blob(2),
                                      value: value ?? [], tombstone: value == nil))
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
    public var outboxHighWater: Int64 { outboxWriter.highWater }
}

