import Foundation
import SegmenterCore

/// Turns KPI partials into `segment-kpi-deltas` messages (SPEC §5, §8).
///
/// Holds, in its own SQLite file, the last published value and `seq` of every (segment, kpi)
/// pair, and an outbox. One transaction records the new published values and their messages,
/// so a crash can neither lose a delta nor break the `seq`/`previous` chain.
public final class KPIPublisher: @unchecked Sendable {
    struct Published { var value: Double?; var seq: Int64 }

    let db: SQLiteConnection
    public let topic: String
    private var published: [KPIKey: Published] = [:]

    public static let fileName = "kpis.sqlite"

    public init(directory: URL, topic: String) throws {
        self.topic = topic
        db = try SQLiteConnection(path: directory.appendingPathComponent(Self.fileName).path)
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL")
        try db.execute("""
            CREATE TABLE IF NOT EXISTS kpi_published (
                segment TEXT NOT NULL, kpi TEXT NOT NULL, value_bits INTEGER, seq INTEGER NOT NULL,
                PRIMARY KEY (segment, kpi)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL,
                created_at INTEGER NOT NULL);
            """)
        let rows = try db.prepare("SELECT segment, kpi, value_bits, seq FROM kpi_published")
        while try rows.step() {
            published[KPIKey(segment: rows.string(0)!, kpi: rows.string(1)!)] =
                Published(value: rows.isNull(2) ? nil : Double(bitPattern: UInt64(bitPattern: rows.int64(2))), seq: rows.int64(3))
        }
    }

    /// Values are published rounded to 1e-6, so float noise from maintaining sums by
    /// difference never shows up as a change.
    static func rounded(_ value: Double?) -> Double? { value.map { ($0 * 1e6).rounded() / 1e6 } }

    /// The last published value of every pair.
    public var values: [KPIKey: Double?] { published.mapValues(\.value) }

    /// Publishes every pair whose value changed since its last message. Returns the messages written.
    @discardableResult
    public func publish(catalog: SegmentCatalog, partials: [KPIKey: KPIPartial], now: Instant,
                        causes: [String: ChangeCause]) throws -> Int {
        var updates: [(KPIKey, Published, String)] = []
        for key in catalog.kpiKeys {
            let current = Self.rounded(catalog.value(of: key, in: partials))
            let last = published[key]
            guard current != (last?.value ?? nil) else { continue }
            let seq = (last?.seq ?? 0) + 1
            let previous = last?.value ?? nil
            let members = partials[KPIKey(segment: key.segment, kpi: SegmentCatalog.membersKPI)]?.counted ?? 0
            let delta: Double? = if let current, let previous { Self.rounded(current - previous) } else { nil }
            let message = JSONText.object([
                ("segment", JSONText.quote(key.segment)), ("kpi", JSONText.quote(key.kpi)),
                ("previous", previous.map(JSONText.number) ?? "null"), ("current", current.map(JSONText.number) ?? "null"),
                ("delta", delta.map(JSONText.number) ?? "null"), ("members", String(members)),
                ("as_of", JSONText.quote(now.description)), ("cause", JSONText.quote((causes[key.segment] ?? .event).rawValue)),
                ("seq", String(seq)),
            ])
            updates.append((key, Published(value: current, seq: seq), message))
        }
        guard !updates.isEmpty else { return 0 }
        try db.transaction {
            let save = try db.prepare("INSERT OR REPLACE INTO kpi_published (segment, kpi, value_bits, seq) VALUES (?, ?, ?, ?)")
            let enqueue = try db.prepare("INSERT INTO outbox (topic, key, value, created_at) VALUES (?, ?, ?, ?)")
            for (key, state, message) in updates {
                save.reset()
                save.bind(1, key.segment)
                save.bind(2, key.kpi)
                save.bind(3, state.value.map { Int64(bitPattern: $0.bitPattern) })
                save.bind(4, state.seq)
                try save.run()
                enqueue.reset()
                enqueue.bind(1, topic)
                enqueue.bind(2, blob: Array(key.segment.utf8))
                enqueue.bind(3, blob: Array(message.utf8))
                enqueue.bind(4, now.nanoseconds)
                try enqueue.run()
            }
        }
        for (key, state, _) in updates { published[key] = state }
        return updates.count
    }
}
