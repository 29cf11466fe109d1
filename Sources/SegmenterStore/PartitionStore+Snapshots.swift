import Foundation
import SegmenterCore
import SQLite

/// A partition database as a file that can travel: copied into a snapshot, read without being
/// opened for writing, installed elsewhere (`StateSnapshots` carries them through Kafka).
extension PartitionStore {
    /// Writes a consistent copy of the database as of its last commit (state, offsets, outbox)
    /// to `url`, compacted: what a snapshot in Kafka carries.
    public func writeSnapshot(to url: URL) throws {
        try? FileManager.default.removeItem(at: url)
        let vacuum = try db.prepare("VACUUM INTO ?")
        vacuum.bind(1, url.path)
        try vacuum.run()
    }

    /// The next offsets stored in a partition's file, read without opening it for writing;
    /// empty when there is no file (or it never committed).
    public static func storedOffsets(directory: URL, partition: Int32) throws -> [String: Int64] {
        let path = directory.appendingPathComponent(fileName(partition: partition)).path
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        let db = try SQLiteConnection(path: path, readOnly: true)
        guard let statement = try? db.prepare("SELECT topic, next_offset FROM offsets WHERE partition = ?") else { return [:] }
        statement.bind(1, Int64(partition))
        var result: [String: Int64] = [:]
        while try statement.step() { result[statement.string(0)!] = statement.int64(1) }
        return result
    }

    /// Which of the two snapshot slots in Kafka this partition's last snapshot went to (the next
    /// goes to the other, so a complete snapshot survives one that is cut short).
    public func lastSnapshotSlot() throws -> Int? { try meta("snapshot_slot").map(Int.init) }

    public func setLastSnapshotSlot(_ slot: Int) throws {
        try db.transaction { try putMeta("snapshot_slot", Int64(slot)) }
    }

    /// Makes the database file at `snapshot` partition `partition`'s state in `directory`,
    /// replacing whatever was there. The partition must not be open.
    public static func install(snapshot: URL, directory: URL, partition: Int32) throws {
        let target = directory.appendingPathComponent(fileName(partition: partition))
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: target.path + suffix) }
        try FileManager.default.moveItem(at: snapshot, to: target)
    }
}
