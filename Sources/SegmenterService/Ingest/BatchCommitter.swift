import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore

/// The batch step across the owned partitions: one SQLite transaction per partition, side by
/// side (partition databases are independent: own file, connection and cache, and each store
/// is touched by one thread at a time). Each pair's watermark moves by its own inputs' progress,
/// read from the consumer's view of where they end.
final class BatchCommitter {
    private let config: SegmenterConfig
    private let consumer: KafkaConsumer
    /// The next offset to consume per owned input partition, as last committed (for the lag).
    private(set) var nextOffsets: [TopicPartition: Int64] = [:]

    init(config: SegmenterConfig, consumer: KafkaConsumer) {
        self.config = config
        self.consumer = consumer
    }

    /// Commits `byPartition` into `stores` (opening the partitions it names); every other owned
    /// partition only moves its watermark and fires its due timers. The outcome's KPI causes
    /// are those of every partition.
    /// - Parameter wallClock: with `clock: hybrid`, the wall clock; also the received-at stamp.
    func commit(_ byPartition: [Int32: [DecodedRecord]], into stores: PartitionStores, receivedAt: Instant,
                wallClock: Instant?) throws -> BatchOutcome {
        for partition in byPartition.keys { _ = try stores.store(for: partition) }
        let work = stores.open.map { (store: $0.value, records: byPartition[$0.key] ?? [], ends: inputEnds(of: $0.key)) }
        let outcomes = UnsafeMutableBufferPointer<Result<BatchOutcome, Error>>.allocate(capacity: work.count)
        defer { outcomes.deallocate() }
        nonisolated(unsafe) let slots = outcomes
        DispatchQueue.concurrentPerform(iterations: work.count) { index in
            let item = work[index]
            (slots.baseAddress! + index).initialize(to: Result {
                if item.records.isEmpty { return try item.store.advance(inputEnds: item.ends, wallClock: wallClock) }
                return try item.store.commit(item.records, receivedAt: receivedAt, inputEnds: item.ends, wallClock: wallClock)
            })
        }
        defer { _ = outcomes.baseAddress.map { $0.deinitialize(count: work.count) } }
        var committed: [TopicPartition: Int64] = [:]
        var total = BatchOutcome()
        for (index, item) in work.enumerated() {
            let outcome = try outcomes[index].get()
            total.add(outcome)
            total.kpiCauses.merge(outcome.kpiCauses) { $1 }
            for (topic, next) in outcome.nextOffsets {
                committed[TopicPartition(topic: topic, partition: item.store.partition)] = next
            }
        }
        nextOffsets.merge(committed) { $1 }
        if !committed.isEmpty { consumer.commitAsync(committed) }  // informational; the truth is in SQLite
        return total
    }

    func forget(_ partitions: [TopicPartition]) {
        for tp in partitions { nextOffsets[tp] = nil }
    }

    /// Per "topic/partition": the high watermark minus the next offset to consume.
    var lag: [String: Int64] {
        var lag: [String: Int64] = [:]
        for (tp, next) in nextOffsets {
            if let high = consumer.cachedHighWatermark(of: tp) { lag["\(tp.topic)/\(tp.partition)"] = max(high - next, 0) }
        }
        return lag
    }

    /// The end offsets of a partition's input topics as the consumer last saw them (no round trip).
    private func inputEnds(of partition: Int32) -> BatchProcessor.InputEnds {
        var ends: [String: Int64] = [:]
        for topic in [config.topics.activity, config.topics.billing] {
            ends[topic] = consumer.cachedHighWatermark(of: TopicPartition(topic: topic, partition: partition))
        }
        return .known(ends)
    }
}
