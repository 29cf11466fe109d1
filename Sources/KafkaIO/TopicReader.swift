import CRdKafka

/// Reads a topic up to where it ends now, outside any consumer group (nothing committed): how
/// an instance reads internal topics whole, or from a remembered position.
public final class TopicReader {
    private let consumer: KafkaConsumer

    /// - Parameter configuration: the service's properties; `group.id` is only a label here.
    public init(configuration: KafkaConfiguration) throws {
        consumer = try KafkaConsumer(configuration: configuration, listener: nil)
    }

    deinit { consumer.close() }

    /// Calls `body` with every message of `topic` from `after[partition] + 1` (the beginning for
    /// partitions not given) up to the high watermarks as they were when called.
    /// - Returns: the last offset read per partition (partitions with nothing to read are absent).
    @discardableResult
    /// - Parameter only: read just these partitions of the topic (nil: all).
    public func readToEnd(_ topic: String, after: [Int32: Int64] = [:], only: Set<Int32>? = nil, timeoutMs: Int = 120_000,
                          _ body: (ConsumedMessage) throws -> Void) throws -> [Int32: Int64] {
        let count = try consumer.partitionCount(of: topic)
        var ends: [Int32: Int64] = [:]
        var starts: [TopicPartition: StartOffset] = [:]
        for partition in 0..<Int32(count) where only?.contains(partition) ?? true {
            let tp = TopicPartition(topic: topic, partition: partition)
            let (low, high) = try consumer.watermarks(of: tp)
            let first = max(low, (after[partition] ?? -1) + 1)
            guard high > first else { continue }
            ends[partition] = high
            starts[tp] = .offset(first)
        }
        guard !starts.isEmpty else { return [:] }
        try consumer.assign(starts)
        var last: [Int32: Int64] = [:]
        var waited = 0
        while !ends.isEmpty {
            // Errors here are the client's own retries (a broker reconnecting); progress decides.
            let (messages, _) = try consumer.poll(maxMessages: 1000, timeoutMs: 200)
            waited = messages.isEmpty ? waited + 200 : 0
            if waited >= timeoutMs {
                throw KafkaError(operation: "read \(topic) to its end (no message for \(timeoutMs / 1000) s; partitions left: \(ends.keys.sorted()))",
                                 code: RD_KAFKA_RESP_ERR__TIMED_OUT)
            }
            for message in messages {
                try body(message)
                last[message.partition] = message.offset
                if let end = ends[message.partition], message.offset + 1 >= end { ends[message.partition] = nil }
            }
        }
        return last
    }
}
