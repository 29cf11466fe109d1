import Foundation
import KafkaIO
import Logging
import SegmenterCore
import SegmenterStore

/// A flag another thread (a signal handler) sets to ask the loop to stop after its batch.
public final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    public init() {}
    public func stop() { lock.lock(); stopped = true; lock.unlock() }
    public var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }
}

/// Running totals, readable from other threads for progress lines.
public struct IngestCounters: Sendable {
    public var consumed = 0
    public var applied = 0
    public var duplicates = 0
    public var deadLettered = 0
    public var keyMismatches = 0
    public var batches = 0
    public var published = 0
}

/// The ingest loop: Kafka → decode → apply → one SQLite transaction per partition → outbox → Kafka.
///
/// Runs on the calling thread (librdkafka's poll blocks; the cooperative pool is only two
/// threads here). Stops after the current batch when `stop` is set, then drains the outbox.
public final class IngestService: @unchecked Sendable {
    private let config: SegmenterConfig
    private let logger: Logger
    private let decoder: EventDecoder
    private let counterLock = NSLock()
    private var totals = IngestCounters()

    public init(config: SegmenterConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        self.decoder = config.decoder
    }

    public var counters: IngestCounters { counterLock.lock(); defer { counterLock.unlock() }; return totals }

    public func run(until stop: StopSignal, onBatch: ((IngestCounters) -> Void)? = nil) throws {
        try prepareStateDirectory()
        let producer = try KafkaProducer(configuration: config.kafka)
        try checkInputTopics(producer)
        let stores = PartitionStores(config: config) { [logger] in logger.info("\($0)") }
        let consumer = try KafkaConsumer(configuration: config.kafka, listener: stores)
        try consumer.subscribe(to: [config.topics.activity, config.topics.billing])
        let relay = OutboxRelay(producer: producer)
        let kinds = [config.topics.activity: InputKind.activity, config.topics.billing: InputKind.billing]
        logger.info("consuming \(config.topics.activity) and \(config.topics.billing) from \(config.kafka["bootstrap.servers"] ?? "?") into \(config.stateDirectory.path)")

        while !stop.isStopped {
            let (messages, errors) = try consumer.poll(maxMessages: config.batchMaxEvents, timeoutMs: config.batchMaxWaitMs)
            for error in errors { logger.warning("\(error)") }
            if !messages.isEmpty {
                try commitBatch(messages, kinds: kinds, stores: stores, consumer: consumer)
            }
            try relay.pump(stores.open)
            relay.forget(partitionsNotIn: stores.open)
            counterLock.lock(); totals.published = relay.published; let snapshot = totals; counterLock.unlock()
            if !messages.isEmpty { onBatch?(snapshot) }
        }
        logger.info("stopping: draining the outbox")
        try relay.drain(stores.open, timeoutMs: 10_000)
        consumer.close()
        counterLock.lock(); totals.published = relay.published; counterLock.unlock()
    }

    /// Decodes a polled batch and commits it, one transaction per partition database.
    private func commitBatch(_ messages: [ConsumedMessage], kinds: [String: InputKind], stores: PartitionStores,
                             consumer: KafkaConsumer) throws {
        let wallClock = Instant(nanoseconds: Int64(Date().timeIntervalSince1970 * 1e9))
        var byPartition: [Int32: [DecodedRecord]] = [:]
        var keyMismatches = 0
        for message in messages {
            let kind = kinds[message.topic] ?? .activity
            let decoded = decoder.decode(message.payload, from: kind, wallClock: wallClock)
            if case let .success(event) = decoded, let key = message.key, !key.elementsEqual(event.userID.utf8) {
                keyMismatches += 1
            }
            byPartition[message.partition, default: []].append(DecodedRecord(
                topic: message.topic, partition: message.partition, offset: message.offset,
                key: message.key, payload: message.payload, decoded: decoded))
        }
        var committed: [TopicPartition: Int64] = [:]
        var batch = BatchOutcome()
        for (partition, records) in byPartition {
            let outcome = try stores.store(for: partition).commit(records, deadLetterTopic: config.topics.deadLetters,
                                                                  receivedAt: wallClock)
            batch.applied += outcome.applied
            batch.duplicates += outcome.duplicates
            batch.deadLettered += outcome.deadLettered
            for record in records {
                let tp = TopicPartition(topic: record.topic, partition: partition)
                committed[tp] = max(committed[tp] ?? 0, record.offset + 1)
            }
        }
        consumer.commitAsync(committed)
        counterLock.lock()
        totals.consumed += messages.count
        totals.applied += batch.applied
        totals.duplicates += batch.duplicates
        totals.deadLettered += batch.deadLettered
        totals.keyMismatches += keyMismatches
        totals.batches += 1
        counterLock.unlock()
    }

    private func prepareStateDirectory() throws {
        let path = config.stateDirectory.path
        do {
            try FileManager.default.createDirectory(at: config.stateDirectory, withIntermediateDirectories: true)
        } catch {
            throw ServiceError("cannot create the state directory \(path): \(error.localizedDescription)")
        }
        guard FileManager.default.isWritableFile(atPath: path) else {
            throw ServiceError("the state directory \(path) is not writable")
        }
    }

    /// Fails fast on an unreachable broker, and on input topics that are not co-partitioned
    /// (a user's activity and billing must land in the same partition number).
    private func checkInputTopics(_ producer: KafkaProducer) throws {
        let servers = config.kafka["bootstrap.servers"] ?? "(bootstrap.servers not set)"
        var counts: [String: Int] = [:]
        for topic in [config.topics.activity, config.topics.billing] {
            do {
                counts[topic] = try producer.partitionCount(of: topic, timeoutMs: 10_000)
            } catch let error as KafkaError where error.codeName == "_TRANSPORT" || error.codeName == "_TIMED_OUT"
                || error.codeName == "_ALL_BROKERS_DOWN" || error.codeName == "_RESOLVE" {
                throw ServiceError("cannot reach Kafka at \(servers): \(error)")
            } catch {
                logger.warning("input topic \(topic) not found yet (\(error)); it will be consumed once it exists")
            }
        }
        if let a = counts[config.topics.activity], let b = counts[config.topics.billing], a != b {
            throw ServiceError("topics \(config.topics.activity) (\(a) partitions) and \(config.topics.billing) (\(b) partitions) "
                + "must have the same partition count: a user's activity and billing events must share a partition")
        }
    }
}

public struct ServiceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
