import CRdKafka
import Foundation

/// The outcome of one produced message, matched to the id the caller gave it.
public struct DeliveryReport: Sendable {
    public let messageID: Int64
    public let error: KafkaError?
    /// Where the broker stored the message (partition -1 and offset -1 when it did not).
    public var partition: Int32 = -1
    public var offset: Int64 = -1
}

/// An idempotent producer (`enable.idempotence=true`: no duplicates or reordering from
/// internal retries). Delivery reports are collected by `poll` and handed to the caller, who
/// only then treats a message as published.
public final class KafkaProducer: @unchecked Sendable {
    let handle: OpaquePointer
    private let context: Unmanaged<ProducerContext>

    public init(configuration: KafkaConfiguration) throws {
        var properties = configuration.without(KafkaConfiguration.consumerOnly)
        if properties["enable.idempotence"] == nil { properties["enable.idempotence"] = "true" }
        if properties["linger.ms"] == nil { properties["linger.ms"] = "5" }
        let conf = try properties.makeConf(operation: "create producer")
        let context = Unmanaged.passRetained(ProducerContext())
        rd_kafka_conf_set_opaque(conf, context.toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            guard let message, let opaque else { return }
            let id = Int64(Int(bitPattern: message.pointee._private))
            guard id != 0 else { return }
            let error = message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil
                : KafkaError(operation: "deliver message", code: message.pointee.err)
            Unmanaged<ProducerContext>.fromOpaque(opaque).takeUnretainedValue().append(
                DeliveryReport(messageID: id, error: error, partition: message.pointee.partition, offset: message.pointee.offset))
        }
        do {
            handle = try makeHandle(type: RD_KAFKA_PRODUCER, conf: conf, operation: "create producer")
        } catch {
            context.release()
            throw error
        }
        self.context = context
    }

    deinit {
        rd_kafka_flush(handle, 10_000)
        rd_kafka_destroy(handle)
        context.release()
    }

    /// Enqueues one message. `messageID` (non-zero) comes back in a `DeliveryReport`;
    /// 0 means no report is wanted. Throws `_QUEUE_FULL` (retriable) when the local queue is full.
    /// - Parameter value: nil produces a null value (a tombstone on a compacted topic).
    public func produce(topic: String, key: [UInt8]?, value: [UInt8]?, messageID: Int64 = 0, partition: Int32? = nil) throws {
        let opaque = UnsafeMutableRawPointer(bitPattern: Int(messageID))
        func send(_ valuePointer: UnsafeRawPointer?, _ valueCount: Int) -> rd_kafka_resp_err_t {
            if let key {
                return key.withUnsafeBytes { keyBytes in
                    segmenter_produce(handle, topic, partition ?? segmenter_partition_ua(), keyBytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                                      keyBytes.count, valuePointer, valueCount, opaque)
                }
            }
            return segmenter_produce(handle, topic, partition ?? segmenter_partition_ua(), nil, 0, valuePointer, valueCount, opaque)
        }
        // An empty value is sent as empty, not null: only `nil` is a tombstone.
        let err = value.map { bytes in bytes.withUnsafeBytes { send($0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), $0.count) } } ?? send(nil, 0)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "produce to \(topic)", code: err) }
    }

    /// Like `produce`, but waits (serving delivery reports) while the local queue is full.
    public func produceWaiting(topic: String, key: [UInt8]?, value: [UInt8]?, messageID: Int64 = 0, partition: Int32? = nil) throws {
        while true {
            do {
                try produce(topic: topic, key: key, value: value, messageID: messageID, partition: partition)
                return
            } catch let error as KafkaError where error.code == RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue {
                rd_kafka_poll(handle, 50)
            }
        }
    }

    /// Serves callbacks for up to `timeoutMs` and returns the delivery reports gathered so far.
    public func poll(timeoutMs: Int32 = 0) -> [DeliveryReport] {
        rd_kafka_poll(handle, timeoutMs)
        return context.takeUnretainedValue().drain()
    }

    /// Waits until every queued message is delivered or `timeoutMs` passes.
    public func flush(timeoutMs: Int32) throws {
        let err = rd_kafka_flush(handle, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(operation: "flush producer", code: err) }
    }

    /// Messages still queued or in flight.
    public var outstanding: Int { Int(rd_kafka_outq_len(handle)) }

    /// Number of partitions of `topic`, from the cluster's metadata.
    public func partitionCount(of topic: String, timeoutMs: Int32 = 5000) throws -> Int {
        try KafkaMetadata.partitionCount(handle, topic: topic, timeoutMs: timeoutMs)
    }

    public func watermarks(of tp: TopicPartition, timeoutMs: Int32 = 5000) throws -> (low: Int64, high: Int64) {
        try queryWatermarks(handle, tp, timeoutMs: timeoutMs)
    }
}

final class ProducerContext: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [DeliveryReport] = []

    func append(_ report: DeliveryReport) {
        lock.lock()
        reports.append(report)
        lock.unlock()
    }

    func drain() -> [DeliveryReport] {
        lock.lock()
        defer { lock.unlock() }
        let result = reports
        reports.removeAll(keepingCapacity: true)
        return result
    }
}
