/// The ids of the events applied to one user-day, as 64-bit hashes: the proof that a
/// redelivered event was already counted (SPEC §7, replays).
///
/// Kept in the user-day row the events belong to rather than one B-tree row per event, so a
/// batch writes one row per changed user-day, and the evidence is pruned with its day once the
/// day is older than the dedupe horizon. Two different ids of one user on one day collide with
/// probability about n²/2⁶⁵ (n ids that day): far below any other source of error here.
public struct EventEvidence: Equatable, Sendable {
    public private(set) var hashes: [UInt64]

    public init(hashes: [UInt64] = []) { self.hashes = hashes }

    public var isEmpty: Bool { hashes.isEmpty }
    public var count: Int { hashes.count }

    /// Records `eventID`; false if it was already there (the event is a duplicate).
    /// A user-day holds a handful of ids, so a linear scan beats any index.
    public mutating func insert(_ eventID: String) -> Bool {
        let hash = Self.hash(eventID)
        if hashes.contains(hash) { return false }
        hashes.append(hash)
        return true
    }

    public func contains(_ eventID: String) -> Bool { hashes.contains(Self.hash(eventID)) }

    /// A stable 64-bit hash (the same in every process and release, unlike `Hasher`): FNV-1a
    /// over the UTF-8 bytes, then SplitMix64's finalizer so that close ids spread over all bits.
    public static func hash(_ eventID: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in eventID.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }

    /// 8 little-endian bytes per id, in insertion order.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hashes.count * 8)
        for hash in hashes { withUnsafeBytes(of: hash.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }

    public init(encoded bytes: [UInt8]) {
        var hashes: [UInt64] = []
        hashes.reserveCapacity(bytes.count / 8)
        var index = 0
        while index + 8 <= bytes.count {
            var value: UInt64 = 0
            for k in 0..<8 { value |= UInt64(bytes[index + k]) << (8 * k) }
            hashes.append(value)
            index += 8
        }
        self.hashes = hashes
    }
}

/// How far back event ids are remembered, in event time (SPEC §7).
///
/// An event older than `watermark − horizon` cannot be proven new (its evidence may be gone), so
/// it is not applied but dead-lettered; an event inside the horizon is checked against the
/// evidence and counted at most once, however late it comes.
public struct DedupeHorizon: Equatable, Sendable {
    public let seconds: Int64

    public init(seconds: Int64) { self.seconds = seconds }

    /// The default: the longest window any rule or KPI reads plus one day, at least 7 days.
    public init(longestWindowDays: Int) {
        seconds = Int64(max(longestWindowDays + 1, 7)) * 86_400
    }

    /// The earliest event time still admitted at `watermark` (nil: no watermark, all admitted).
    public func cutoff(at watermark: Instant?) -> Instant? {
        watermark.map { $0.adding(seconds: -seconds) }
    }

    /// Whether an event at `ts` may be applied at `watermark`: an event exactly at the edge is.
    public func admits(_ ts: Instant, at watermark: Instant?) -> Bool {
        guard let cutoff = cutoff(at: watermark) else { return true }
        return ts >= cutoff
    }

    /// The dead-letter reason for an event the horizon rejects.
    public func rejection(of ts: Instant, at watermark: Instant) -> String {
        "event is older than the dedupe horizon: ts \(ts) is \(Self.describe(watermark.nanoseconds - ts.nanoseconds)) before "
            + "its partition pair's watermark (\(watermark)), the horizon is \(Self.describe(seconds * Instant.nanosPerSecond)); "
            + "it cannot be told apart from an event already counted (reconciliation corrects truths this old)"
    }

    /// Whether an event at `ts` may be applied: inside the horizon of its partition pair's
    /// `watermark` (from event times), and not before the evidence `floor` (days whose ids are no longer kept).
    /// The one rule both the batch step and the poll thread (keeping payloads) apply.
    public func admits(_ ts: Instant, at watermark: Instant?, floor: Instant?) -> Bool {
        admits(ts, at: watermark) && floor.map { ts >= $0 } ?? true
    }

    /// Why an event at `ts` cannot be applied, if so (see `admits(_:at:floor:)`).
    public func rejection(of ts: Instant, at watermark: Instant?, floor: Instant?) -> String? {
        if let watermark, !admits(ts, at: watermark) { return rejection(of: ts, at: watermark) }
        if let floor, ts < floor {
            return "event is older than the dedupe horizon: ts \(ts) is before \(floor), the oldest instant whose event ids "
                + "this partition still keeps; it cannot be told apart from an event already counted"
        }
        return nil
    }

    /// `31d`, `40d 3h`, `2h 5m`, `12s`.
    public static func describe(_ nanoseconds: Int64) -> String {
        let total = nanoseconds / Instant.nanosPerSecond
        let (days, hours, minutes) = (total / 86_400, total % 86_400 / 3600, total % 3600 / 60)
        var parts: [String] = []
        if days > 0 { parts.append("\(days)d") }
        if hours > 0 { parts.append("\(hours)h") }
        if minutes > 0 && days == 0 { parts.append("\(minutes)m") }
        if parts.isEmpty { parts.append("\(total % 60)s") }
        return parts.joined(separator: " ")
    }
}

/// A user's evidence over every day that can still take events, kept with the user between
/// batches (`UserSlice.evidence`), so a streaming batch checks its events without reading a row.
/// Flat (16 bytes an id) rather than a dictionary of days: a user has a handful of recent ids.
public struct RecentEvidence: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public let day: DayNumber
        public let hash: UInt64
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    /// From the user-day rows that still hold evidence.
    public init(days: [DayNumber: EventEvidence]) {
        for (day, ids) in days.sorted(by: { $0.key < $1.key }) {
            entries.append(contentsOf: ids.hashes.map { Entry(day: day, hash: $0) })
        }
    }

    public func contains(_ hash: UInt64, on day: DayNumber) -> Bool {
        entries.contains { $0.hash == hash && $0.day == day }
    }

    /// Records an id; false if the day already had it.
    public mutating func insert(_ hash: UInt64, on day: DayNumber) -> Bool {
        if contains(hash, on: day) { return false }
        entries.append(Entry(day: day, hash: hash))
        return true
    }

    /// The ids of one day, as its row stores them.
    public func ids(on day: DayNumber) -> EventEvidence {
        EventEvidence(hashes: entries.compactMap { $0.day == day ? $0.hash : nil })
    }

    /// Drops the days before `day` (pruned from the rows too: no event of them is admitted).
    public mutating func forget(before day: DayNumber) {
        if entries.contains(where: { $0.day < day }) { entries.removeAll { $0.day < day } }
    }
}
