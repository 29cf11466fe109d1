import SegmenterCore
import SQLite

/// Input offsets Kafka no longer held when they were due to be read (retention deleted them
/// before they were consumed, or an offset reset jumped over them): SPEC §7 says they are never
/// silent, so each partition keeps how many and the last range, beside its offsets.
public struct SkippedOffsets: Equatable, Sendable {
    public let topic: String
    public let partition: Int32
    public var total: Int64
    /// `1200..<5000 at 2026-12-07T04:00:00Z (offset_reset earliest)`
    public var last: String?
}

extension PartitionStore {
    /// Adds `range` of `topic` to this partition's skipped offsets.
    public func noteSkippedOffsets(topic: String, range: Range<Int64>, policy: String, at wall: Instant) throws {
        guard !range.isEmpty else { return }
        try db.transaction {
            try putMeta("skipped_offsets:\(topic)", (try meta("skipped_offsets:\(topic)") ?? 0) + Int64(range.count))
            try putText("skipped_offsets_last:\(topic)", "\(range.lowerBound)..<\(range.upperBound) at \(wall) (offset_reset \(policy))")
        }
    }
}

extension StateReader {
    /// Every partition's skipped input offsets, per topic (none: empty).
    public func skippedOffsets() throws -> [SkippedOffsets] {
        try partitions.flatMap { number, db in
            let totals = try db.prepare("SELECT substr(key, 17), value FROM meta WHERE key LIKE 'skipped_offsets:%' ORDER BY key")
            var rows: [SkippedOffsets] = []
            while try totals.step() {
                let topic = totals.string(0)!
                let last = try db.prepare("SELECT value FROM meta_text WHERE key = ?")
                last.bind(1, "skipped_offsets_last:\(topic)")
                rows.append(SkippedOffsets(topic: topic, partition: number, total: totals.int64(1), last: try last.step() ? last.string(0) : nil))
            }
            return rows
        }
    }
}
