import Foundation
import SegmenterCore
import SQLite

/// Each KPI over time and the periods its alerts fired, kept by the KPI publisher in partition
/// 0's database beside the chain, for the dashboard's charts (`/api/history?segment=`).
///
/// Bounded: one value per pair per `resolution` of the group's clock (the last one wins: the
/// chart draws steps, a value holds until the next), and nothing older than `retention`.
/// At the defaults that is at most 4,032 rows per pair.
public enum KPISeries {
    public static let resolutionSeconds: Int64 = 5 * 60
    public static let retentionSeconds: Int64 = 14 * 86_400

    // Its tables are the partition database's (Schema, step 9).

    /// Records `values` at `now`; call inside the publish transaction.
    static func record(_ values: [(KPIKey, Double?)], at now: Instant, in db: SQLiteConnection) throws {
        try record(values.map { PendingPoint(key: $0.0, value: $0.1, at: now) }, in: db)
    }

    /// A value of a pair at an instant, not yet written.
    struct PendingPoint {
        let key: KPIKey
        let value: Double?
        let at: Instant
        var bucket: Int64 { KPISeries.bucket(of: at) }
    }

    static func bucket(of instant: Instant) -> Int64 { instant.nanoseconds / (resolutionSeconds * Instant.nanosPerSecond) }

    static func record(_ points: [PendingPoint], in db: SQLiteConnection) throws {
        let upsert = try db.cached("INSERT OR REPLACE INTO kpi_series (segment, kpi, bucket, at, value_bits) VALUES (?, ?, ?, ?, ?)")
        for point in points {
            upsert.reset()
            upsert.bind(1, point.key.segment)
            upsert.bind(2, point.key.kpi)
            upsert.bind(3, point.bucket)
            upsert.bind(4, point.at.nanoseconds)
            upsert.bind(5, point.value.map { Int64(bitPattern: $0.bitPattern) })
            try upsert.run()
        }
    }

    /// Opens or closes firing periods where an alert's state changed; call inside the publish transaction.
    static func recordTransitions(from old: [String: AlertStatus], to new: [String: AlertStatus], at now: Instant,
                                  in db: SQLiteConnection) throws {
        for (name, status) in new where (old[name]?.state ?? .resolved) != status.state {
            if status.state == .firing {
                let open = try db.cached("INSERT OR IGNORE INTO alert_periods (name, started, ended) VALUES (?, ?, NULL)")
                open.bind(1, name)
                open.bind(2, now.nanoseconds)
                try open.run()
            } else {
                let close = try db.cached("UPDATE alert_periods SET ended = ? WHERE name = ? AND ended IS NULL")
                close.bind(1, now.nanoseconds)
                close.bind(2, name)
                try close.run()
            }
        }
    }

    /// Forgets what is older than `retention` before `now` (once a day is enough), pair by pair
    /// along the primary key (a scan of the whole series each day was most of a catch-up's day
    /// ends). `pairs`: every pair the series may hold.
    static func prune(before now: Instant, pairs: some Sequence<KPIKey>, in db: SQLiteConnection) throws {
        let cutoff = now.nanoseconds - retentionSeconds * Instant.nanosPerSecond
        // `at < cutoff` implies `bucket <= bucket(cutoff)`: the range bounds the delete exactly.
        let series = try db.cached("DELETE FROM kpi_series WHERE segment = ? AND kpi = ? AND bucket <= ? AND at < ?")
        for pair in pairs {
            series.reset()
            series.bind(1, pair.segment)
            series.bind(2, pair.kpi)
            series.bind(3, bucket(of: Instant(nanoseconds: cutoff)))
            series.bind(4, cutoff)
            try series.run()
        }
        let periods = try db.cached("DELETE FROM alert_periods WHERE ended IS NOT NULL AND ended < ?")
        periods.bind(1, cutoff)
        try periods.run()
    }

    /// The pairs the series holds rows of (one scan, when the publisher opens).
    static func pairs(in db: SQLiteConnection) throws -> Set<KPIKey> {
        var pairs: Set<KPIKey> = []
        let rows = try db.prepare("SELECT DISTINCT segment, kpi FROM kpi_series")
        while try rows.step() { pairs.insert(KPIKey(segment: rows.string(0)!, kpi: rows.string(1)!)) }
        return pairs
    }

    public struct Point: Sendable, Equatable {
        public let at: Instant
        public let value: Double?
    }

    public struct Period: Sendable, Equatable {
        public let alert: String
        public let started: Instant
        /// nil: still firing.
        public let ended: Instant?
    }

    /// One segment's KPIs over time (oldest first) and the firing periods of `alerts`, read
    /// from a partition-0 database file on a connection of its own (beside the running writer).
    public static func read(databasePath: String, segment: String, alerts: [String]) throws -> (series: [String: [Point]], periods: [Period]) {
        guard FileManager.default.fileExists(atPath: databasePath) else { return ([:], []) }
        let db = try SQLiteConnection(path: databasePath, readOnly: true)
        try db.execute("PRAGMA busy_timeout = 2000")
        var series: [String: [Point]] = [:]
        var periods: [Period] = []
        do {
            let rows = try db.prepare("SELECT kpi, at, value_bits FROM kpi_series WHERE segment = ? ORDER BY kpi, bucket")
            rows.bind(1, segment)
            while try rows.step() {
                let value = rows.isNull(2) ? nil : Double(bitPattern: UInt64(bitPattern: rows.int64(2)))
                series[rows.string(0)!, default: []].append(Point(at: Instant(nanoseconds: rows.int64(1)), value: value))
            }
            let fired = try db.prepare("SELECT started, ended FROM alert_periods WHERE name = ? ORDER BY started")
            for alert in alerts {
                fired.reset()
                fired.bind(1, alert)
                while try fired.step() {
                    periods.append(Period(alert: alert, started: Instant(nanoseconds: fired.int64(0)),
                                          ended: fired.optionalInt64(1).map(Instant.init(nanoseconds:))))
                }
            }
        } catch let error as SQLiteError where error.message.contains("no such table") {
            return ([:], [])  // a state written before the series existed, or no KPI published yet
        }
        return (series, periods)
    }
}
