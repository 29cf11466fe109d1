import CRdKafka

/// One message read from Kafka, copied out of librdkafka's buffer.
public struct ConsumedMessage: Sendable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let key: [UInt8]?
    public let payload: [UInt8]
    /// The message's timestamp (milliseconds since the Unix epoch; the producer's create time
    /// unless the topic keeps the broker's), nil when the broker gave none.
    public var timestampMs: Int64? = nil
}

/// What the consumer tells its owner when the group moves partitions.
public protocol RebalanceListener: AnyObject, Sendable {
    /// Partitions now ours; return where each should start (the offsets stored with the state).
    func partitionsAssigned(_ partitions: [TopicPartition]) -> [TopicPartition: StartOffset]
    /// Partitions no longer ours; finish and commit their work before returning.
    func partitionsRevoked(_ partitions: [TopicPartition])
}

/// A consumer-group member. Offsets are never auto-committed: the owner stores them in SQLite
/// with the state and starts each assigned partition from there.
///
/// Not thread-safe; poll from one dedicated thread (`rd_kafka_consumer_poll` blocks, and the
/// rebalance callback runs inside it).
public final class KafkaConsumer: @unchecked Sendable {
    let handle: OpaquePointer
    let context: Unmanaged<ConsumerContext>
    private var topicNames: [OpaquePointer: String] = [:]
    private var closed = false
    /// Whether `poll` reads each message's timestamp (only readers that need it pay for it).
    private let readsTimestamps: Bool

    /// - Parameters:
    ///   - configuration: passed through; `group.id` and `bootstrap.servers` are required.
    ///   - listener: told of group rebalances; nil for a reader that only uses `assign`.
    ///   - offsetReset: where a partition without a start offset begins, and, when set, what
    ///     to do when a partition's next offset is no longer in Kafka is left to the owner:
    ///     `poll` reports it (`KafkaError.outOfRange`) instead of librdkafka resetting silently.
    ///   - timestamps: fill `ConsumedMessage.timestampMs` (off for ingest, which never reads it).
    public init(configuration: KafkaConfiguration, listener: RebalanceListener?, offsetReset: OffsetReset? = nil,
                timestamps: Bool = false) throws {
        readsTimestamps = timestamps
        var properties = configuration.without(KafkaConfiguration.producerOnly)
        properties["enable.auto.commit"] = "false"
        properties["enable.auto.offset.store"] = "false"
        if properties["session.timeout.ms"] == nil { properties["session.timeout.ms"] = "6000" }
        if properties["auto.offset.reset"] == nil { properties["auto.offset.reset"] = "earliest" }
        let resetToEnd = offsetReset.map { $0 == .latest } ?? (properties["auto.offset.reset"] == "latest")
        if offsetReset != nil { properties["auto.offset.reset"] = "error" }
        // librdkafka 2.0 stops fetching a partition while the consumer queue holds more than
        // `queued.min.messages` (default 100k) and looks again only at its broker thread's next
        // 1 s wakeup. One fetch of a backlog brings more than that, so a consumer that does any
        // work between polls fetched in bursts and sat idle ~0.7 s of every second (measured:
        // 1 µs of work per message cut a bare consumer from ~1M to 0.18M messages/s). The prefetch
        // stays bounded in bytes: 16 MiB rather than librdkafka's 64 (measured: same throughput,
        // ~150 MiB less peak RSS in `scripts/bench`).
        if properties["queued.min.messages"] == nil { properties["queued.min.messages"] = "1000000" }
        if properties["queued.max.messages.kbytes"] == nil { properties["queued.max.messages.kbytes"] = "16384" }
        guard properties["group.id"] != nil else { throw KafkaError(operation: "create consumer", message: "group.id is not set") }
        let conf = try properties.makeConf(operation: "create consumer")
        let context = Unmanaged.passRetained(ConsumerContext(listener: listener, resetToEnd: resetToEnd))
        rd_kafka_conf_set_opaque(conf, context.toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
            guard let rk, let partitions, let opaque else { return }
            Unmanaged<ConsumerContext>.fromOpaque(opaque).takeUnretainedValue().rebalance(rk, err, partitions)
        }
        do {
            handle = try makeHandle(type: RD_KAFKA_CONSUMER, conf: conf, operation: "create consumer")
        } catch {
            context.release()
            throw error
        }
        self.context = context
        rd_kafka_poll_set_consumer(handle)
    }

    deinit {
        close()
        rd_kafka_destroy(handle)
        context.release()
    }

    public func subscribe(to topics: [String]) throws {
        let list = PartitionList(capacity: topics.count)
        for topic in topics { list.add(TopicPartition(topic: topic, partition: segmenter_partition_ua())) }
        let err = rd_kafka_subscribe(handle, list.handle)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "subscribe to \(topics)", code: err) }
    }

    /// Reads the given partitions outside any group rebalance (no `subscribe`): for internal
    /// topics every instance reads whole.
    public func assign(_ starts: [TopicPartition: StartOffset]) throws {
        let list = PartitionList(capacity: starts.count)
        for (tp, start) in starts { list.add(tp, offset: start.raw) }
        let err = rd_kafka_assign(handle, list.handle)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "assign \(starts.keys.map(\.description).sorted())", code: err) }
    }

    /// Waits up to `timeoutMs` for a first message, then takes whatever else is already
    /// fetched, up to `maxMessages`. Consumer errors that are not fatal are returned separately.
    public func poll(maxMessages: Int, timeoutMs: Int32) throws -> (messages: [ConsumedMessage], errors: [KafkaError]) {
        var messages: [ConsumedMessage] = []
        var errors: [KafkaError] = []
        messages.reserveCapacity(min(maxMessages, 4096))
        var wait = timeoutMs
        while messages.count < maxMessages {
            guard let message = rd_kafka_consumer_poll(handle, wait) else { break }
            wait = 0
            defer { rd_kafka_message_destroy(message) }
            let m = message.pointee
            if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { continue }
                var error = KafkaError(operation: "consume", code: m.err, message: m.payload.map {
                    String(decoding: UnsafeRawBufferPointer(start: $0, count: m.len), as: UTF8.self)
                })
                if m.err == RD_KAFKA_RESP_ERR__FATAL { throw error }
                if m.err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET, let rkt = m.rkt {
                    error.outOfRange = OffsetOutOfRange(partition: TopicPartition(topic: topicName(rkt), partition: m.partition),
                                                        offset: m.offset, reason: error.message)
                }
                errors.append(error)
                continue
            }
            var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let timestamp = readsTimestamps ? rd_kafka_message_timestamp(message, &timestampType) : -1
            messages.append(ConsumedMessage(
                topic: topicName(m.rkt),
                partition: m.partition,
                offset: m.offset,
                key: m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) },
                payload: m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? [],
                timestampMs: timestamp >= 0 ? timestamp : nil
            ))
        }
        return (messages, errors)
    }

    /// Commits offsets to the group asynchronously. Informational only (lag tools read them);
    /// the truth is the offsets stored in SQLite.
    public func commitAsync(_ offsets: [TopicPartition: Int64]) {
        guard !offsets.isEmpty else { return }
        let list = PartitionList(capacity: offsets.count)
        for (tp, next) in offsets { list.add(tp, offset: next) }
        _ = rd_kafka_commit(handle, list.handle, 1)
    }

    /// Leaves the group (revoking partitions through the listener).
    public func close() {
        guard !closed else { return }
        closed = true
        rd_kafka_consumer_close(handle)
    }

    /// The group's committed next offsets of `partitions` (those with none are absent). Here
    /// they only tell how far another member got with a partition before it moved.
    public func committed(_ partitions: [TopicPartition], timeoutMs: Int32 = 5000) throws -> [TopicPartition: Int64] {
        guard !partitions.isEmpty else { return [:] }
        let list = PartitionList(capacity: partitions.count)
        for tp in partitions { list.add(tp) }
        let err = rd_kafka_committed(handle, list.handle, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "read the group's committed offsets", code: err) }
        var result: [TopicPartition: Int64] = [:]
        for (tp, offset, error) in PartitionList.elements(of: list.handle) where error == RD_KAFKA_RESP_ERR_NO_ERROR && offset >= 0 {
            result[tp] = offset
        }
        return result
    }

    /// Number of partitions of `topic`, from the cluster's metadata.
    public func partitionCount(of topic: String, timeoutMs: Int32 = 5000) throws -> Int {
        try KafkaMetadata.partitionCount(handle, topic: topic, timeoutMs: timeoutMs)
    }

    /// (low, high) watermarks of a partition as the broker reports them.
    public func watermarks(of tp: TopicPartition, timeoutMs: Int32 = 5000) throws -> (low: Int64, high: Int64) {
        try queryWatermarks(handle, tp, timeoutMs: timeoutMs)
    }

    /// The earliest offset of each partition whose message timestamp is at or after
    /// `milliseconds` (Unix epoch); the high watermark where no message is that new.
    public func offsets(atOrAfter milliseconds: Int64, of partitions: [TopicPartition], timeoutMs: Int32 = 10_000) throws -> [TopicPartition: Int64] {
        let list = PartitionList(capacity: partitions.count)
        for tp in partitions { list.add(tp, offset: milliseconds) }
        let err = rd_kafka_offsets_for_times(handle, list.handle, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "look up offsets by time", code: err) }
        var result: [TopicPartition: Int64] = [:]
        for (tp, offset, error) in PartitionList.elements(of: list.handle) {
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "look up the offset of \(tp) by time", code: error) }
            result[tp] = offset >= 0 ? offset : try watermarks(of: tp, timeoutMs: timeoutMs).high
        }
        return result
    }

    /// The high watermark from the last fetch response (no network round trip), if known.
    public func cachedHighWatermark(of tp: TopicPartition) -> Int64? {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_get_watermark_offsets(handle, tp.topic, tp.partition, &low, &high)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? high : nil
    }

    private func topicName(_ rkt: OpaquePointer) -> String {
        if let cached = topicNames[rkt] { return cached }
        let name = String(cString: rd_kafka_topic_name(rkt))
        topicNames[rkt] = name
        return name
    }
}

func queryWatermarks(_ handle: OpaquePointer, _ tp: TopicPartition, timeoutMs: Int32) throws -> (low: Int64, high: Int64) {
    var low: Int64 = 0
    var high: Int64 = 0
    let err = rd_kafka_query_watermark_offsets(handle, tp.topic, tp.partition, &low, &high, timeoutMs)
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "query watermarks of \(tp)", code: err) }
    return (low, high)
}

/// Lives as long as the consumer handle; the rebalance callback reaches it through the opaque.
final class ConsumerContext: @unchecked Sendable {
    let listener: RebalanceListener?
    let resetToEnd: Bool
    /// Where the last assignment started each partition (raw offsets), for `restart`.
    var starts: [TopicPartition: Int64] = [:]

    init(listener: RebalanceListener?, resetToEnd: Bool) {
        self.listener = listener
        self.resetToEnd = resetToEnd
    }

    func rebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        let assigned = PartitionList.elements(of: partitions).map(\.0)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let starts = listener?.partitionsAssigned(assigned) ?? [:]
            let list = PartitionList(capacity: assigned.count)
            self.starts = [:]
            for tp in assigned {
                let offset = (starts[tp] ?? (resetToEnd ? .end : .beginning)).raw
                self.starts[tp] = offset
                list.add(tp, offset: offset)
            }
            rd_kafka_assign(rk, list.handle)
        default:
            listener?.partitionsRevoked(assigned)
            rd_kafka_assign(rk, nil)
        }
    }
}
