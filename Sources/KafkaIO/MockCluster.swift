import CRdKafka

/// librdkafka's built-in Kafka-protocol broker, on ephemeral loopback ports.
///
/// It speaks the real protocol (kcat and other clients work), starts in about 20 ms and needs
/// no download. It does not implement transactions faithfully, which segmenter never uses.
public final class MockCluster: @unchecked Sendable {
    private let owner: OpaquePointer      // the throwaway producer handle the cluster lives in
    private let cluster: OpaquePointer
    public let bootstrapServers: String

    public init(brokers: Int32 = 1) throws {
        let conf = rd_kafka_conf_new()!
        rd_kafka_conf_set(conf, "log_level", "3", nil, 0)
        owner = try makeHandle(type: RD_KAFKA_PRODUCER, conf: conf, operation: "start mock cluster")
        guard let cluster = rd_kafka_mock_cluster_new(owner, brokers) else {
            rd_kafka_destroy(owner)
            throw KafkaError(operation: "start mock cluster", message: "rd_kafka_mock_cluster_new failed")
        }
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        // Clients other than librdkafka misread its ListOffsets v4+ reply; cap it at v3.
        rd_kafka_mock_set_apiversion(cluster, 2, 0, 3)
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)   // before the handle that owns it
        rd_kafka_destroy(owner)
    }

    /// Creates a topic (the mock does not answer the CreateTopics admin request).
    public func createTopic(_ name: String, partitions: Int32) throws {
        let err = rd_kafka_mock_topic_create(cluster, name, partitions, 1)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "create mock topic \(name)", code: err) }
    }

    /// Takes a broker down or brings it back, for failure tests.
    public func setBroker(_ id: Int32, up: Bool) {
        if up { rd_kafka_mock_broker_set_up(cluster, id) } else { rd_kafka_mock_broker_set_down(cluster, id) }
    }
}
