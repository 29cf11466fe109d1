import Foundation
import Logging
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceRuntime

/// A partition whose next offset Kafka no longer holds (SPEC §7), met when it is assigned or
/// while it is consumed: where to continue by `ingest.offset_reset`, and what the operator is told.
enum SkippedInput {
    /// Where `tp` continues, having recorded, counted and logged what that skips; throws with
    /// `offset_reset: none`.
    /// - Parameter now: the wall clock, stamped on the skipped range's record.
    static func resume(_ tp: TopicPartition, requested: Int64, low: Int64, high: Int64, policy: OffsetReset,
                       store: PartitionStore?, at now: Instant, logger: Logger) throws -> Int64 {
        guard let (next, skipped) = policy.resume(requested: requested, low: low, high: high) else {
            throw ServiceError("\(tp): the next offset to consume, \(requested), is no longer in Kafka (it holds \(low)..<\(high)): "
                + "input was deleted before it was consumed. ingest.offset_reset: none stops here rather than skip "
                + "\(max(0, low - requested)) messages; set offset_reset: earliest to continue from \(low) (the skipped range is "
                + "counted and logged), or restore the input")
        }
        guard !skipped.isEmpty else {
            logger.notice("\(tp): offset \(requested) is not in Kafka (it holds \(low)..<\(high)); continuing from \(next) (offset_reset \(policy.rawValue)): nothing skipped, input read again is deduplicated",
                          metadata: ["topic": "\(tp.topic)", "partition": "\(tp.partition)", "offset": "\(requested)"])
            return next
        }
        logger.error("\(tp): offsets \(skipped.lowerBound)..<\(skipped.upperBound) (\(skipped.count) messages) were no longer in Kafka when due to be consumed; skipped them, continuing from \(next) (offset_reset \(policy.rawValue)); they are counted in segmenter_input_offsets_skipped_total and shown by inspect state",
                     metadata: ["topic": "\(tp.topic)", "partition": "\(tp.partition)", "offset": "\(requested)"])
        ServiceMetrics.recordSkippedOffsets(skipped.count, of: tp)
        do {
            try store?.noteSkippedOffsets(topic: tp.topic, range: skipped, policy: policy.rawValue, at: now)
        } catch {
            logger.error("could not record the skipped offsets of \(tp) in its state: \(error)",
                         metadata: ["topic": "\(tp.topic)", "partition": "\(tp.partition)"])
        }
        return next
    }
}
