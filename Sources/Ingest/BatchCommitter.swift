import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceConfig
import ServiceRuntime

/// The batch step across the owned partitions: one SQLite transaction per partition, side by
/// side (partition databases are independent: own file, connection and cache, and each store
/// is touched by one thread at a time). Each pair's watermark moves by its own inputs' progress,
/// read from the consumer's view of where they end.
final class BatchCommitter {
    private let config: SegmenterConfig
    private let consumer: KafkaConsumer
    private let clock: any ServiceClock
    /// The next offset to consume per owned input partition, as last committed (for the lag).
    private(set) var nextOffsets: [TopicPartition: Int64] = [:]
    /// Since when each input partition has been read to its end, as far as the consumer knows.
    private var caughtUpSince: [TopicPartition: ContinuousClock.Instant] = [:]
    /// Input partitions whose end was asked of the broker since they were assigned: the cached
    /// end of a partition assigned again is the one from before, until its first fetch.
    private var endAskedSinceAssigned: Set<TopicPartition> = []
    /// When each input partition last had records in a batch: a topic that wakes up after a
    /// quiet spell restarts its pair's other topic's idleness (see `inputEnds`).
    private var recordsLastSeen: [TopicPartition: ContinuousClock.Instant] = [:]
    /// How long an input must stay read to its end before it stops holding its pair back
    /// (Flink's idleness, in effect). The end offset the consumer knows is from its last fetch
    /// of that partition: right after new input arrives, one topic's fresh messages can be in
    /// hand while the other's end is still the old one, and a pair judged by that stale end
    /// would run ahead of messages not fetched yet. Two fetch waits (librdkafka's default is
    /// 500 ms) let the next fetch tell.
    static let idleAfter: Duration = .seconds(1)

    init(config: SegmenterConfig, consumer: KafkaConsumer, clock: any ServiceClock) {
        self.config = config
        self.consumer = consumer
        self.clock = clock
    }

    /// Commits `byPartition` into `stores` (opening the partitions it names); every other owned
    /// partition only moves its watermark and fires its due timers. The outcome's KPI causes
    /// are those of every partition.
    /// - Parameter wallClock: with `clock: hybrid`, the wall clock; also the received-at stamp.
    func commit(_ byPartition: [Int32: [DecodedRecord]], into stores: PartitionStores, receivedAt: Instant,
                wallClock: Instant?) throws -> BatchOutcome {
        for partition in byPartition.keys { _ = try stores.store(for: partition) }
        let work = stores.open.map { partition, store in
            let records = byPartition[partition] ?? []
            return (store: store, records: records, ends: inputEnds(of: store, reading: Set(records.map(\.topic))))
        }
        let outcomes = UnsafeMutableBufferPointer<Result<BatchOutcome, Error>>.allocate(capacity: work.count)
        defer { outcomes.deallocate() }
        nonisolated(unsafe) let slots = outcomes
        DispatchQueue.concurrentPerform(iterations: work.count) { index in
            let item = work[index]
            (slots.baseAddress! + index).initialize(to: Result {
                if item.records.isEmpty { return try item.store.advance(inputEnds: item.ends, wallClock: wallClock, receivedAt: receivedAt) }
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
        for tp in partitions {
            nextOffsets[tp] = nil
            caughtUpSince[tp] = nil
            recordsLastSeen[tp] = nil
            endAskedSinceAssigned.remove(tp)
        }
    }

    /// Per "topic/partition": the high watermark minus the next offset to consume.
    var lag: [String: Int64] {
        var lag: [String: Int64] = [:]
        for (tp, next) in nextOffsets {
            if let high = consumer.cachedHighWatermark(of: tp) { lag["\(tp.topic)/\(tp.partition)"] = max(high - next, 0) }
        }
        return lag
    }

    /// The end offsets of a partition's input topics as the consumer last saw them (no round
    /// trip), for those read to their end for at least `idleAfter` and with nothing in this
    /// batch: the others are left out, so they hold the pair back.
    ///
    /// A topic whose records arrive after a quiet spell of `idleAfter` or more restarts the other
    /// topic's idleness: the other topic's cached end is from a fetch that may predate what its
    /// producer wrote alongside the fresh records (a burst after an outage lands on both topics,
    /// one fetch apart), so it is trusted again only after a fetch that follows the wake-up.
    private func inputEnds(of store: PartitionStore, reading: Set<String>) -> BatchProcessor.InputEnds {
        var ends: [String: Int64] = [:]
        let now = clock.monotonicNow
        let pair = [config.topics.activity, config.topics.billing]
        for topic in reading where pair.contains(topic) {
            let tp = TopicPartition(topic: topic, partition: store.partition)
            let wokeUp = recordsLastSeen[tp].map { now - $0 >= Self.idleAfter } ?? true
            recordsLastSeen[tp] = now
            guard wokeUp else { continue }
            for other in pair where other != topic {
                let otherTP = TopicPartition(topic: other, partition: store.partition)
                if caughtUpSince[otherTP] != nil { caughtUpSince[otherTP] = now }
            }
        }
        for topic in pair {
            let tp = TopicPartition(topic: topic, partition: store.partition)
            guard !reading.contains(topic), let end = consumer.cachedHighWatermark(of: tp), store.nextOffset(of: topic) >= end else {
                caughtUpSince[tp] = nil
                continue
            }
            let since = caughtUpSince[tp] ?? now
            caughtUpSince[tp] = since
            guard now - since >= Self.idleAfter else { continue }
            // The first time after an assignment, the broker confirms the end (one round trip).
            if !endAskedSinceAssigned.contains(tp) {
                guard let fresh = try? consumer.watermarks(of: tp, timeoutMs: 2_000).high else { continue }
                endAskedSinceAssigned.insert(tp)
                guard store.nextOffset(of: topic) >= fresh else {
                    caughtUpSince[tp] = nil
                    continue
                }
            }
            ends[topic] = end
        }
        return .known(ends)
    }
}
