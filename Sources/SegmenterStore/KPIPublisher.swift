import Foundation
import SegmenterCore
import SQLite

/// Turns KPI partials into `segment-kpi-deltas` messages (SPEC §5, §8).
///
/// Holds the last published value and `seq` of every (segment, kpi) pair, end-of-day history and
/// alert states in **partition 0's database**, and writes its messages to that database's
/// outbox: the chain moves with partition 0 to whichever instance owns it (the KPI leader),
/// together with its snapshots. One transaction records the new published values and their
/// messages, so a crash can neither lose a delta nor break the `seq`/`previous` chain.
public final class KPIPublisher: @unchecked Sendable {
    let db: SQLiteConnection
    public let topic: String
    let outboxWriter: OutboxWriter
    /// The chain as stored: a run steps a copy and keeps it once its transaction committed.
    public internal(set) var chain = KPIChain()
    /// Per partition of `topic`, the greatest offset at which one of this chain's messages was
    /// delivered: a new leader reads the topic from there to learn what others published since.
    public internal(set) var deliveredOffsets: [Int32: Int64] = [:]
    /// `deliveredOffsets` as last written to the database (a publish writes only what moved).
    var savedOffsets: [Int32: Int64] = [:]
    /// While a run of steps publishes (one transaction), the writes only its last step's value
    /// matters for: each pair's latest chart point per resolution bucket and the publisher's
    /// meta rows. A catch-up steps every minute of event time; the chart keeps one value per five.
    var deferred: DeferredWrites?
    struct DeferredWrites {
        var points: [KPIKey: KPISeries.PendingPoint] = [:]
        var meta: [String: Int64] = [:]
    }
    /// Every pair the chart series holds rows of, for pruning pair by pair.
    var chartedPairs: Set<KPIKey> = []

    /// Where the publisher kept its state before it moved into partition 0's database.
    public static let legacyFileName = "kpis.sqlite"

    /// - Parameter store: partition 0's database (the publisher shares its connection and outbox;
    ///   use both from one thread).
    public init(store: PartitionStore, topic: String) throws {
        self.topic = topic
        db = store.db
        outboxWriter = store.outboxWriter
        // Its tables are the partition database's (Schema, step 9).
        try adoptLegacyFile(in: URL(fileURLWithPath: store.path).deletingLastPathComponent())
        try loadPublished()
        try loadAlertState()
    }

    func loadPublished() throws {
        let rows = try db.prepare("SELECT segment, kpi, value_bits, seq FROM kpi_published")
        while try rows.step() {
            chain.published[KPIKey(segment: rows.string(0)!, kpi: rows.string(1)!)] =
                KPIChain.Link(value: rows.isNull(2) ? nil : Double(bitPattern: UInt64(bitPattern: rows.int64(2))), seq: rows.int64(3))
        }
        let offsets = try db.prepare("SELECT key, value FROM publisher_meta WHERE key LIKE 'delivered_offset:%'")
        while try offsets.step() {
            if let partition = Int32(offsets.string(0)!.dropFirst("delivered_offset:".count)) { deliveredOffsets[partition] = offsets.int64(1) }
        }
        savedOffsets = deliveredOffsets
        chartedPairs = try KPISeries.pairs(in: db)
    }

    /// State directories written before the publisher moved into partition 0 kept it in its own
    /// file: its chain, history, alert states and unsent messages move over once, in one
    /// transaction, and the old file is renamed.
    private func adoptLegacyFile(in directory: URL) throws {
        let legacy = directory.appendingPathComponent(Self.legacyFileName)
        guard FileManager.default.fileExists(atPath: legacy.path) else { return }
        let attach = try db.prepare("ATTACH DATABASE ? AS legacy")
        attach.bind(1, legacy.path)
        try attach.run()
        do {
            try db.transaction {
                try db.execute("""
                    INSERT OR IGNORE INTO kpi_published SELECT * FROM legacy.kpi_published;
                    INSERT OR IGNORE INTO kpi_history SELECT * FROM legacy.kpi_history;
                    INSERT OR IGNORE INTO alert_states SELECT * FROM legacy.alert_states;
                    INSERT OR IGNORE INTO publisher_meta SELECT * FROM legacy.publisher_meta;
                    INSERT INTO outbox (topic, key, value, created_at) SELECT topic, key, value, created_at FROM legacy.outbox ORDER BY id;
                    """)
            }
        } catch {
            try? db.execute("DETACH DATABASE legacy")
            throw error
        }
        try db.execute("DETACH DATABASE legacy")
        try outboxWriter.refreshHighWater()
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.moveItem(atPath: legacy.path + suffix, toPath: legacy.path + ".migrated" + suffix)
        }
    }

    /// The last published value of every pair.
    public var values: [KPIKey: Double?] { chain.published.mapValues(\.value) }
    public var history: [KPIKey: [DayNumber: Double]] { chain.history }
    public var alertStatus: [String: AlertStatus] { chain.alertStatus }
    public var alertReadings: [String: (value: Double?, baseline: Double?)] { chain.alertReadings }
    public var foldedBucket: Int64? { chain.foldedBucket }

    /// Steps the chain once at `now` (`KPIChain.step`) and writes the step in one transaction.
    /// - Returns: the messages written.
    @discardableResult
    public func publish(catalog: SegmentCatalog, partials: [KPIKey: KPIPartial], now: Instant,
                        causes: [String: ChangeCause], alerts: [AlertDefinition] = [], alertTopic: String = "segment-alerts",
                        calendar: DayCalendar = .utc, drillDown: DrillDownProvider? = nil, provisional: Bool = false) throws -> Int {
        var next = chain
        let step = try next.step(catalog: catalog, partials: partials, now: now, causes: causes, alerts: alerts, calendar: calendar,
                                 drillDown: drillDown, provisional: provisional)
        if step.writes {
            try db.transaction { try write(step, alertTopic: alertTopic) }
            savedOffsets = deliveredOffsets
        }
        chain = next
        return step.writes ? step.messageCount : 0
    }

    /// Writes one step of the chain; call inside a transaction.
    func write(_ step: KPIChain.Step, alertTopic: String) throws {
        try savePublished(step.deltas.map { ($0.key, $0.link) })
        for delta in step.deltas { try enqueue(topic: topic, key: delta.key.segment, message: delta.json) }
        if !step.provisional {
            try saveHistory(step.closedDays)
            try chart(step.charted, at: step.now)
            try KPISeries.recordTransitions(from: step.statusesBefore, to: step.statuses, at: step.now, in: db)
            if !step.closedDays.isEmpty {
                try flushDeferredPoints()
                try KPISeries.prune(before: step.now, pairs: chartedPairs, in: db)
            }
            try saveAlerts(step.statuses, readings: step.readings, drillDowns: step.drillDowns)
            for message in step.alertMessages { try enqueue(topic: alertTopic, key: message.alert, message: message.json) }
            try writeMeta("current_day", Int64(step.day))
            if let bucket = step.bucket { try writeMeta("folded_bucket", bucket) }
        }
        try saveDeliveredOffsets()
    }

    /// Charts `values` at `now`: written now, or with `deferred`, kept until the pair's next value
    /// falls in another resolution bucket (which replaces it otherwise) or the run ends.
    func chart(_ values: [(KPIKey, Double?)], at now: Instant) throws {
        for (key, _) in values { chartedPairs.insert(key) }
        guard deferred != nil else { return try KPISeries.record(values, at: now, in: db) }
        var replaced: [KPISeries.PendingPoint] = []
        for (key, value) in values {
            let point = KPISeries.PendingPoint(key: key, value: value, at: now)
            if let earlier = deferred!.points.updateValue(point, forKey: key), earlier.bucket != point.bucket { replaced.append(earlier) }
        }
        try KPISeries.record(replaced, in: db)
    }

    func flushDeferredPoints() throws {
        guard let points = deferred?.points.values, !points.isEmpty else { return }
        try KPISeries.record(Array(points), in: db)
        deferred!.points = [:]
    }

    func writeMeta(_ key: String, _ value: Int64) throws {
        if deferred != nil { deferred!.meta[key] = value } else { try setMeta(key, value) }
    }

    /// Writes what `deferred` holds; call at the end of the run's transaction.
    func flushDeferred() throws {
        try flushDeferredPoints()
        for (key, value) in deferred?.meta ?? [:] { try setMeta(key, value) }
        deferred = nil
    }

    /// Records each pair's last published value and `seq`; call inside a transaction.
    func savePublished(_ states: [(KPIKey, KPIChain.Link)]) throws {
        let save = try db.cached("INSERT OR REPLACE INTO kpi_published (segment, kpi, value_bits, seq) VALUES (?, ?, ?, ?)")
        for (key, state) in states {
            save.reset()
            save.bind(1, key.segment)
            save.bind(2, key.kpi)
            save.bind(3, state.value.map { Int64(bitPattern: $0.bitPattern) })
            save.bind(4, state.seq)
            try save.run()
        }
    }

    /// Writes the delivered offsets that moved since the last write; call inside a transaction.
    func saveDeliveredOffsets() throws {
        for (partition, offset) in deliveredOffsets where savedOffsets[partition] != offset {
            try setMeta("delivered_offset:\(partition)", offset)
        }
    }

    func enqueue(topic: String, key: String, message: String) throws {
        try outboxWriter.append(topic: topic, key: Array(key.utf8), value: Array(message.utf8))
    }
}
