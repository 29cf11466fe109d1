import CRdKafka

enum KafkaMetadata {
    /// Partition count of one topic; throws if the topic does not exist or the cluster is unreachable.
    static func partitionCount(_ handle: OpaquePointer, topic: String, timeoutMs: Int32) throws -> Int {
        let topicHandle = rd_kafka_topic_new(handle, topic, nil)
        defer { rd_kafka_topic_destroy(topicHandle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, topicHandle, &metadata, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(operation: "fetch metadata for \(topic)", code: err)
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0 else { throw KafkaError(operation: "fetch metadata for \(topic)", message: "topic not found") }
        let entry = metadata.pointee.topics[0]
        guard entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "fetch metadata for \(topic)", code: entry.err) }
        return Int(entry.partition_cnt)
    }
}

/// Topic creation through the Admin API, for real clusters.
///
/// librdkafka's mock broker does not answer CreateTopics; use `MockCluster.createTopic` there.
public enum KafkaAdmin {
    /// Creates the topics that do not exist yet; existing ones are left alone.
    /// - Parameter configs: topic settings, e.g. `cleanup.policy: compact`.
    public static func createTopics(using producer: KafkaProducer, names: [String], partitions: Int32,
                                    replicationFactor: Int32 = -1, configs: [String: String] = [:], timeoutMs: Int32 = 10_000) throws {
        guard !names.isEmpty else { return }
        var errorText = [CChar](repeating: 0, count: 256)
        var specs: [OpaquePointer?] = names.map { rd_kafka_NewTopic_new($0, partitions, replicationFactor, &errorText, errorText.count) }
        for spec in specs {
            for (name, value) in configs { _ = rd_kafka_NewTopic_set_config(spec, name, value) }
        }
        defer { for spec in specs { rd_kafka_NewTopic_destroy(spec) } }
        let queue = rd_kafka_queue_new(producer.handle)
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(producer.handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, nil, 0)
        specs.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(producer.handle, buffer.baseAddress, buffer.count, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 1000) else {
            throw KafkaError(operation: "create topics \(names)", code: RD_KAFKA_RESP_ERR__TIMED_OUT)
        }
        defer { rd_kafka_event_destroy(event) }
        if rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(operation: "create topics \(names)", code: rd_kafka_event_error(event))
        }
        let result = rd_kafka_event_CreateTopics_result(event)
        var count = 0
        guard let topics = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
        for index in 0..<count {
            let err = rd_kafka_topic_result_error(topics[index])
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                let name = String(cString: rd_kafka_topic_result_name(topics[index]))
                throw KafkaError(operation: "create topic \(name)", code: err)
            }
        }
    }
}
