import CRdKafka

/// librdkafka properties, passed through untouched so that `security.protocol`, `sasl.*`,
/// `ssl.*` and every tuning knob work against a real cluster.
public struct KafkaConfiguration: Sendable {
    public var properties: [String: String]

    public init(_ properties: [String: String] = [:]) { self.properties = properties }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// The consumer group (`group.id`); segmenter's default when none is given.
    public var groupID: String { properties["group.id"] ?? Self.defaultGroupID }
    public static let defaultGroupID = "segmenter"

    /// Where the brokers are (`bootstrap.servers`), for messages: "(bootstrap.servers not set)" when absent.
    public var bootstrapServers: String { properties["bootstrap.servers"] ?? "(bootstrap.servers not set)" }

    /// Properties that only consumers understand; a producer built from the same map drops
    /// them, so one `kafka:` section can configure both without librdkafka warnings.
    static let consumerOnly: Set<String> = [
        "group.id", "group.instance.id", "session.timeout.ms", "heartbeat.interval.ms", "auto.offset.reset",
        "enable.auto.commit", "auto.commit.interval.ms", "enable.auto.offset.store", "max.poll.interval.ms",
        "partition.assignment.strategy", "fetch.min.bytes", "fetch.max.bytes", "fetch.wait.max.ms",
        "isolation.level", "queued.min.messages", "queued.max.messages.kbytes", "enable.partition.eof",
        "max.partition.fetch.bytes", "check.crcs",
    ]
    /// Properties that only producers understand, dropped for consumers.
    static let producerOnly: Set<String> = [
        "enable.idempotence", "linger.ms", "queue.buffering.max.ms", "acks", "request.required.acks",
        "compression.type", "compression.codec", "batch.size", "batch.num.messages", "message.timeout.ms",
        "queue.buffering.max.messages", "queue.buffering.max.kbytes", "retries", "retry.backoff.ms",
        "transactional.id", "partitioner", "delivery.timeout.ms", "max.in.flight.requests.per.connection",
    ]

    func without(_ keys: Set<String>) -> KafkaConfiguration {
        KafkaConfiguration(properties.filter { !keys.contains($0.key) })
    }

    /// Builds an `rd_kafka_conf_t`. The caller owns it until `rd_kafka_new` succeeds.
    func makeConf(operation: String) throws -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errorText, errorText.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let text = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                throw KafkaError(operation: operation, message: "property \(key): \(text)")
            }
        }
        return conf
    }

    /// Properties safe to print: values of anything that looks like a secret are masked.
    public var redacted: [String: String] {
        properties.mapValues { $0 }.reduce(into: [:]) { result, pair in
            let key = pair.key.lowercased()
            let secret = key.contains("password") || key.contains("secret") || key.contains("sasl.oauthbearer.config")
                || key.hasSuffix(".key.pem") || key.contains("token")
            result[pair.key] = secret ? "***" : pair.value
        }
    }
}

/// Creates a handle from `conf`, taking ownership of it only on success (librdkafka's rule).
func makeHandle(type: rd_kafka_type_t, conf: OpaquePointer, operation: String) throws -> OpaquePointer {
    var errorText = [CChar](repeating: 0, count: 512)
    guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
        rd_kafka_conf_destroy(conf)
        let text = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw KafkaError(operation: operation, message: text)
    }
    return handle
}
