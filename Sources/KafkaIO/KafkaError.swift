import CRdKafka

/// A librdkafka failure: which operation, librdkafka's code and text, and whether retrying may help.
public struct KafkaError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let code: Int32
    public let codeName: String
    public let message: String
    public let isRetriable: Bool
    /// What went wrong, as far as a caller decides anything by it.
    public let kind: Kind
    /// Set when a partition's next offset is no longer in Kafka (the owner decides what to do).
    public internal(set) var outOfRange: OffsetOutOfRange?

    init(operation: String, code: rd_kafka_resp_err_t, message: String? = nil) {
        self.operation = operation
        self.code = code.rawValue
        self.codeName = String(cString: rd_kafka_err2name(code))
        self.message = message ?? String(cString: rd_kafka_err2str(code))
        self.isRetriable = KafkaError.retriableCodes.contains(code)
        self.kind = Kind(code)
    }

    init(operation: String, message: String) {
        self.operation = operation
        self.code = RD_KAFKA_RESP_ERR__FAIL.rawValue
        self.codeName = "_FAIL"
        self.message = message
        self.isRetriable = false
        self.kind = .other
    }

    init(operation: String, error: OpaquePointer) {
        self.operation = operation
        let code = rd_kafka_error_code(error)
        self.code = code.rawValue
        self.codeName = String(cString: rd_kafka_err2name(code))
        self.message = String(cString: rd_kafka_error_string(error))
        self.isRetriable = rd_kafka_error_is_retriable(error) != 0 || KafkaError.retriableCodes.contains(code)
        self.kind = Kind(code)
    }

    /// The failures callers tell apart; librdkafka's code and name stay in `code`/`codeName` for messages.
    public enum Kind: Sendable, Equatable {
        /// No broker answered: transport failure, timeout, all brokers down, or a name that does not resolve.
        case brokerUnreachable
        /// The topic or partition does not exist (yet).
        case unknownTopic
        /// Any other failure.
        case other

        init(_ code: rd_kafka_resp_err_t) {
            switch code {
            case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__RESOLVE:
                self = .brokerUnreachable
            case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
                self = .unknownTopic
            default:
                self = .other
            }
        }
    }

    private static let retriableCodes: Set<rd_kafka_resp_err_t> = [
        RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR__RESOLVE, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
    ]

    public var description: String {
        "Kafka \(operation) failed: \(message) (librdkafka \(codeName), code \(code), \(isRetriable ? "retriable" : "not retriable"))"
    }
}
