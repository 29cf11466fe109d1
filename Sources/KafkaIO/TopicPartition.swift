import CRdKafka

/// A partition of a topic.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public let topic: String
    public let partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// Where to start reading a partition when it is assigned.
public enum StartOffset: Sendable, Equatable {
    case offset(Int64)
    case beginning
    case end

    var raw: Int64 {
        switch self {
        case let .offset(value): return value
        case .beginning: return segmenter_offset_beginning()
        case .end: return segmenter_offset_end()
        }
    }
}

/// Owns one `rd_kafka_topic_partition_list_t`.
final class PartitionList {
    let handle: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(capacity: Int) { handle = rd_kafka_topic_partition_list_new(Int32(max(capacity, 1))) }
    deinit { rd_kafka_topic_partition_list_destroy(handle) }

    func add(_ tp: TopicPartition, offset: Int64? = nil) {
        let element = rd_kafka_topic_partition_list_add(handle, tp.topic, tp.partition)!
        if let offset { element.pointee.offset = offset }
    }

    /// Reads a list librdkafka owns (for example one passed to a callback).
    static func elements(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return (TopicPartition(topic: String(cString: element.topic), partition: element.partition), element.offset, element.err)
        }
    }
}
