import CRdKafka

/// What to do when a partition's next offset is no longer in Kafka (retention deleted input
/// before it was consumed, or the topic was recreated): librdkafka would reset silently, so the
/// consumer asks it to report instead (`auto.offset.reset=error`) and the owner decides, counts
/// and logs (SPEC §7: skipped offsets are never silent).
public enum OffsetReset: String, Sendable, CaseIterable {
    /// Continue from the oldest offset Kafka still holds; what lay between is counted as skipped.
    case earliest
    /// Continue from the end; everything up to it is counted as skipped.
    case latest
    /// Stop with an error naming the partition and the range (nothing is skipped).
    case none

    /// Reads a librdkafka `auto.offset.reset` value (`smallest`, `largest`, `error`, …).
    public init?(librdkafka value: String) {
        switch value {
        case "earliest", "smallest", "beginning": self = .earliest
        case "latest", "largest", "end": self = .latest
        case "none", "error": self = .none
        default: return nil
        }
    }

    /// Where to continue a partition whose next offset `requested` is outside `low..<high`, and
    /// the offsets that are skipped by doing so (empty when it goes back: re-read input is
    /// deduplicated); nil with `.none`.
    public func resume(requested: Int64, low: Int64, high: Int64) -> (next: Int64, skipped: Range<Int64>)? {
        switch self {
        case .none: return nil
        case .earliest: return (low, requested < low ? requested..<low : requested..<requested)
        case .latest: return (high, requested < high ? requested..<high : requested..<requested)
        }
    }
}

/// A partition whose next offset Kafka no longer holds (reported with `auto.offset.reset=error`).
public struct OffsetOutOfRange: Sendable, CustomStringConvertible {
    public let partition: TopicPartition
    /// The offset the consumer asked for.
    public let offset: Int64
    public let reason: String

    public var description: String { "\(partition): offset \(offset) is not in Kafka any more (\(reason))" }
}

extension KafkaConsumer {
    /// Continues `tp` from `offset` after an `OffsetOutOfRange` (librdkafka stopped fetching it
    /// and will not seek a stopped partition): the assignment is given again, every other
    /// partition at the position the owner has consumed to (or where it was started), `tp` at
    /// `offset`. Messages fetched but not yet polled are fetched again.
    public func restart(_ tp: TopicPartition, at offset: Int64) throws {
        var current: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        var err = rd_kafka_assignment(handle, &current)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let current else { throw KafkaError(operation: "read the assignment", code: err) }
        defer { rd_kafka_topic_partition_list_destroy(current) }
        err = rd_kafka_position(handle, current)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "read the positions", code: err) }
        let list = PartitionList(capacity: Int(current.pointee.cnt))
        for (assigned, position, _) in PartitionList.elements(of: current) {
            let start = context.takeUnretainedValue().starts[assigned] ?? Int64(RD_KAFKA_OFFSET_BEGINNING)
            list.add(assigned, offset: assigned == tp ? offset : (position >= 0 ? position : start))
        }
        context.takeUnretainedValue().starts[tp] = offset
        err = rd_kafka_assign(handle, list.handle)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "continue \(tp) at offset \(offset)", code: err) }
    }
}

extension KafkaProducer {
    /// Deletes the records of each partition before the given offset (Kafka's DeleteRecords, what
    /// retention does to old segments): for tests and operators replaying retention.
    /// - Returns: each partition's new low watermark.
    public func deleteRecords(before offsets: [TopicPartition: Int64], timeoutMs: Int32 = 10_000) throws -> [TopicPartition: Int64] {
        let list = PartitionList(capacity: offsets.count)
        for (tp, offset) in offsets { list.add(tp, offset: offset) }
        guard let request = rd_kafka_DeleteRecords_new(list.handle) else { throw KafkaError(operation: "delete records", message: "cannot build the request") }
        defer { rd_kafka_DeleteRecords_destroy(request) }
        let queue = rd_kafka_queue_new(handle)
        defer { rd_kafka_queue_destroy(queue) }
        var requests: [OpaquePointer?] = [request]
        rd_kafka_DeleteRecords(handle, &requests, 1, nil, queue)
        guard let event = rd_kafka_queue_poll(queue, timeoutMs) else { throw KafkaError(operation: "delete records", code: RD_KAFKA_RESP_ERR__TIMED_OUT) }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(operation: "delete records", code: err, message: rd_kafka_event_error_string(event).map { String(cString: $0) })
        }
        guard let result = rd_kafka_event_DeleteRecords_result(event), let lows = rd_kafka_DeleteRecords_result_offsets(result) else { return [:] }
        var output: [TopicPartition: Int64] = [:]
        for (tp, offset, err) in PartitionList.elements(of: UnsafeMutablePointer(mutating: lows)) {
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "delete records of \(tp)", code: err) }
            output[tp] = offset
        }
        return output
    }
}
