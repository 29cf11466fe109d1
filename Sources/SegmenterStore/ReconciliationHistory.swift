import Foundation
import SegmenterCore
import SQLite

/// Every reconciliation run's report, in `reconciliation.sqlite` next to the partition
/// databases: written by the process that reconciles, read by `inspect reconciliation`, the
/// HTTP API and metrics, also while `run` is running (WAL).
public final class ReconciliationHistory: @unchecked Sendable {
    private let db: SQLiteConnection
    private let lock = NSLock()
    public static let fileName = "reconciliation.sqlite"

    public init(directory: URL, readOnly: Bool = false) throws {
        let path = directory.appendingPathComponent(Self.fileName).path
        if readOnly {
            db = try SQLiteConnection(path: path, readOnly: true)
            return
        }
        db = try SQLiteConnection(path: path)
        try Schema.migrate(db, calendar: .utc, steps: Schema.reconciliationHistory)
    }

    /// Records a run as it starts; returns its id for `update`.
    public func insert(_ report: ReconciliationReport) throws -> Int64 {
        lock.lock()
        defer { lock.unlock() }
        let statement = try db.prepare("INSERT INTO runs (started_at, status, report) VALUES (?, ?, ?) RETURNING id")
        statement.bind(1, report.startedAt.nanoseconds)
        statement.bind(2, report.status.rawValue)
        statement.bind(3, try Self.encode(report))
        _ = try statement.step()
        return statement.int64(0)
    }

    public func update(id: Int64, _ report: ReconciliationReport) throws {
        lock.lock()
        defer { lock.unlock() }
        let statement = try db.prepare("UPDATE runs SET status = ?, report = ? WHERE id = ?")
        statement.bind(1, report.status.rawValue)
        statement.bind(2, try Self.encode(report))
        statement.bind(3, id)
        try statement.run()
    }

    /// The newest runs first.
    public func recent(limit: Int = 20) throws -> [ReconciliationReport] {
        lock.lock()
        defer { lock.unlock() }
        let statement = try db.prepare("SELECT report FROM runs ORDER BY id DESC LIMIT ?")
        statement.bind(1, Int64(limit))
        var reports: [ReconciliationReport] = []
        while try statement.step() {
            if let text = statement.string(0), let report = try? JSONDecoder().decode(ReconciliationReport.self, from: Data(text.utf8)) {
                reports.append(report)
            }
        }
        return reports
    }

    /// Reports as JSON text (stable key order, for people and for the API).
    public static func encode(_ report: ReconciliationReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }
}
