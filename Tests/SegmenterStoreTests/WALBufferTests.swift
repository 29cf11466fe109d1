import Foundation
import Testing
import SQLite

/// The WAL-buffering VFS every writer opens through (`CSQLiteWALBuffer`): a commit's frames
/// reach the file in one write, and before the commit is visible to anyone.
@Suite struct WALBufferTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wal-buffer-\(UUID().uuidString)")

    func open() throws -> (writer: SQLiteConnection, reader: SQLiteConnection) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("state.sqlite").path
        let writer = try SQLiteConnection(path: path)
        // As the partition stores do, with a small checkpoint interval so the WAL restarts often.
        try writer.execute("PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=300")
        try writer.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, commit_number INTEGER NOT NULL, body BLOB NOT NULL)")
        try writer.execute("CREATE INDEX rows_by_commit ON rows (commit_number)")
        return (writer, try SQLiteConnection(path: path, readOnly: true))
    }

    /// This thread's write system calls so far (the test body runs on one thread; other tests'
    /// threads are not counted).
    func writeCalls() throws -> Int {
        let text = try String(contentsOfFile: "/proc/thread-self/io", encoding: .utf8)
        let line = text.split(separator: "\n").first { $0.hasPrefix("syscw:") }!
        return Int(line.split(separator: " ").last!)!
    }

    func commit(_ number: Int, rows: Int, on writer: SQLiteConnection) throws {
        let insert = try writer.prepare("INSERT INTO rows (commit_number, body) VALUES (?, ?)")
        try writer.transaction {
            for row in 0..<rows {
                insert.reset()
                insert.bind(1, Int64(number))
                // ~600 bytes each, varied: a commit of 40 rows dirties ~30 pages of 1 KiB.
                insert.bind(2, blob: [UInt8](repeating: UInt8(truncatingIfNeeded: number &* 31 &+ row), count: 500 + (number + row) % 200))
                try insert.run()
            }
        }
    }

    /// Another connection reads every commit right after it returns, across WAL restarts and
    /// growth past each preallocated step: had a frame stayed in memory past its commit, the
    /// reader would find the old bytes (or zeros) where the WAL index sends it.
    @Test func everyCommitIsReadableByAnotherConnectionAtOnce() throws {
        let (writer, reader) = try open()
        defer { try? FileManager.default.removeItem(at: directory) }
        let count = try reader.prepare("SELECT count(*), coalesce(sum(length(body)), 0) FROM rows WHERE commit_number = ?")
        var expectedRows = 0
        for number in 0..<400 {
            let rows = 1 + number % 80  // up to 80 rows: some commits exceed the 64 KiB buffer
            try commit(number, rows: rows, on: writer)
            expectedRows += rows
            count.reset()
            count.bind(1, Int64(number))
            #expect(try count.step())
            #expect(count.int64(0) == Int64(rows))
            let bytes = (0..<rows).reduce(0) { $0 + 500 + (number + $1) % 200 }
            #expect(count.int64(1) == Int64(bytes), "commit \(number)")
            if number == 200 { try writer.execute("PRAGMA wal_checkpoint(TRUNCATE)") }  // the WAL starts over from nothing
        }
        let total = try reader.prepare("SELECT count(*) FROM rows")
        #expect(try total.step())
        #expect(total.int64(0) == Int64(expectedRows))
        let check = try reader.prepare("PRAGMA integrity_check")
        #expect(try check.step())
        #expect(check.string(0) == "ok")
    }

    /// SQLite writes a frame as two calls (header, page): a commit of ~30 pages took ~60. Through
    /// the VFS it takes one, once the WAL's space is allocated (growing it is SQLite's own size
    /// hint, which here writes a byte per block: once per file size, not per commit).
    @Test func aCommitsFramesGoOutInOneWrite() throws {
        let (writer, _) = try open()
        defer { try? FileManager.default.removeItem(at: directory) }
        try writer.execute("PRAGMA wal_autocheckpoint=0")  // checkpoints write page by page: not what is measured
        for number in 0..<60 { try commit(number, rows: 40, on: writer) }
        try writer.execute("PRAGMA wal_checkpoint(RESTART)")  // the next commit writes the WAL from its start again
        let before = try writeCalls()
        for number in 60..<100 { try commit(number, rows: 40, on: writer) }
        let perCommit = Double(try writeCalls() - before) / 40
        #expect(perCommit <= 1.5, "\(perCommit) write calls per commit of 40 rows")
    }
}
