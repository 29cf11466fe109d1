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
    struct Published { var value: Double?; var seq: Int64 }

    let db: SQLiteConnection
    public let topic: String
    let outboxWriter: OutboxWriter
    var published: [KPIKey: Published] = [:]
    /// End-of-day values per pair: the baselines of `drop`/`rise` alerts.
    public internal(set) var history: [KPIKey: [DayNumber: Double]] = [:]
    /// The day of the last publish; when the clock passes it, its values become end-of-day history.
    var currentDay: DayNumber?
    /// The values as of the last step (not a provisional publish): what a day's end keeps.
    var steppedValues: [KPIKey: Double?] = [:]
    /// The last bucket of the KPI grid published as a step (`KPIGrid`): the next step
    /// is the bucket after it (nil: none yet).
    public internal(set) var foldedBucket: Int64?
    public internal(set) var alertStatus: [String: AlertStatus] = [:]
    /// The drill-down of each alert's latest firing (JSON), kept while it fires.
    var lastDrillDowns: [String: String] = [:]
    /// The last evaluation of each alert (value, baseline), for `inspect alerts`.
    public internal(set) var alertReadings: [String: (value: Double?, baseline: Double?)] = [:]
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
        published = [:]
        let rows = try db.prepare("SELECT segment, kpi, value_bits, seq FROM kpi_published")
        while try rows.step() {
            published[KPIKey(segment: rows.string(0)!, kpi: rows.string(1)!)] =
                Published(value: rows.isNull(2) ? nil : Double(bitPattern: UInt64(bitPattern: rows.int64(2))), seq: rows.int64(3))
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
    public var values: [KPIKey: Double?] { published.mapValues(\.value) }

    /// Publishes every pair whose value changed since its last message, records end-of-day
    /// values when the clock passed midnight, and evaluates `alerts` (publishing each change of
    /// state once). One transaction. Returns the messages written.
    /// - Parameter step: a step of the KPI grid (`KPIGrid`), with `now` a bucket's end and
    ///   `partials` as of then: the values go to the charts and the day's end, alerts are stepped,
    ///   and `bucket` is remembered as folded; no KPI delta is sent (the deltas topic is coalesced
    ///   per emit). nil: every part, at `now`.
    /// - Parameter provisional: only the KPI deltas of changed values (the current partials at
    ///   the group's watermark, after the steps).
    /// - Parameter changedSegments: for a step, the segments whose partials moved since the
    ///   previous step (nil: not known). The others keep that step's values, uncomputed: a
    ///   catch-up steps every minute of event time, and most minutes move a few segments.
    @discardableResult
    public func publish(catalog: SegmentCatalog, partials: [KPIKey: KPIPartial], now: Instant,
                        causes: [String: ChangeCause], alerts: [AlertDefinition] = [], alertTopic: String = "segment-alerts",
                        calendar: DayCalendar = .utc, drillDown: DrillDownProvider? = nil, step bucket: Int64? = nil,
                        changedSegments: Set<String>? = nil, provisional: Bool = false) throws -> Int {
        var updates: [(KPIKey, Published, String)] = []
        var current: [KPIKey: Double?] = [:]
        // The segments to compute: all, or only those that moved (the day's volatility KPIs move
        // with the day itself; the first step of a day computes everything).
        var keys = catalog.kpiKeys
        if bucket != nil, let changedSegments, !catalog.volatility, currentDay == calendar.day(of: now),
           steppedValues.count == keys.count {
            keys = changedSegments.flatMap { segment in catalog.definedPartialKeys(of: segment).map { [$0.members] + $0.kpis } ?? [] }
            current = steppedValues
        }
        for key in keys {
            let value = KPIDelta.rounded(catalog.value(of: key, in: partials, day: calendar.day(of: now)))
            current[key] = value
            // A step charts and alerts; the deltas topic stays coalesced to one message per pair
            // per emit (SPEC §5): the publish at the watermark that follows the steps sends it.
            guard bucket == nil, let delta = KPIDelta.next(
                after: published[key].map { ($0.value, $0.seq) }, key: key, value: value,
                members: partials[KPIKey(segment: key.segment, kpi: SegmentCatalog.membersKPI)]?.counted ?? 0,
                asOf: now, cause: causes[key.segment] ?? .event) else { continue }
            updates.append((key, Published(value: value, seq: delta.seq), delta.json))
        }
        if provisional {
            guard !updates.isEmpty else { return 0 }
            try db.transaction {
                try savePublished(updates.map { ($0.0, $0.1) })
                for (key, _, message) in updates { try enqueue(topic: topic, key: key.segment, message: message, now: now) }
                try saveDeliveredOffsets()
            }
            for (key, state, _) in updates { published[key] = state }
            savedOffsets = deliveredOffsets
            return updates.count
        }
        let endOfDay = closedDays(now: now, calendar: calendar)
        var history = self.history
        for (day, values) in endOfDay { for (key, value) in values { history[key, default: [:]][day] = value } }
        let round = AlertRound(alerts, after: alertStatus, values: current, partials: partials, history: history,
                               now: now, today: calendar.day(of: now), drillDown: drillDown)
        let (statuses, readings) = (round.statuses, round.readings)
        let alertMessages = round.messages
        for message in alertMessages where message.drillDown != nil { lastDrillDowns[message.alert] = message.drillDown }
        let statusChanged = statuses != alertStatus.filter { statuses[$0.key] != nil }
        // The series records a step's values that differ from the last step's (a provisional
        // publish in between may already have sent them).
        let charted: [(KPIKey, Double?)] = keys.compactMap { key in  // the others keep their last step's value
            let value = current[key] ?? nil
            if let before = steppedValues[key], before == value { return nil }
            return (key, value)
        }
        guard !updates.isEmpty || !charted.isEmpty || !endOfDay.isEmpty || !alertMessages.isEmpty || statusChanged || currentDay == nil
              || bucket != nil else {
            alertReadings = readings
            return 0
        }
        try db.transaction {
            try savePublished(updates.map { ($0.0, $0.1) })
            for (key, _, message) in updates { try enqueue(topic: topic, key: key.segment, message: message, now: now) }
            try saveHistory(endOfDay)
            try chart(charted, at: now)
            try KPISeries.recordTransitions(from: alertStatus, to: statuses, at: now, in: db)
            if !endOfDay.isEmpty {
                try flushDeferredPoints()
                try KPISeries.prune(before: now, pairs: chartedPairs, in: db)
            }
            try saveAlerts(statuses, readings: readings)
            for message in alertMessages { try enqueue(topic: alertTopic, key: message.alert, message: message.json, now: now) }
            try writeMeta("current_day", Int64(calendar.day(of: now)))
            if let bucket { try writeMeta("folded_bucket", bucket) }
            try saveDeliveredOffsets()
        }
        for (key, state, _) in updates { published[key] = state }
        savedOffsets = deliveredOffsets
        self.history = history
        currentDay = calendar.day(of: now)
        steppedValues = current
        if let bucket { foldedBucket = bucket }
        alertStatus.merge(statuses) { $1 }
        alertReadings = readings
        return updates.count + alertMessages.count
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
    func savePublished(_ states: [(KPIKey, Published)]) throws {
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

    func enqueue(topic: String, key: String, message: String, now: Instant) throws {
        try outboxWriter.append(topic: topic, key: Array(key.utf8), value: Array(message.utf8))
    }
}
