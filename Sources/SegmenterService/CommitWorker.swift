import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore

/// What the poll thread hands the commit thread, in consumption order.
enum IngestCommand: @unchecked Sendable {
    /// A decoded batch, grouped by partition number.
    case batch(DecodedBatch)
    case assigned([TopicPartition], Reply<[TopicPartition: StartOffset]>)
    /// Answered only after every earlier batch is committed, so a revoked partition's stored
    /// offsets are final before the group hands it to someone else.
    case revoked([TopicPartition], Reply<Bool>)
}

struct DecodedBatch {
    var byPartition: [Int32: [DecodedRecord]] = [:]
    var consumed = 0
    var keyMismatches = 0
}

/// The commit thread: owns the partition databases and the outbox relay. Each batch becomes
/// one SQLite transaction per partition (state + offsets + outbox), then the relay publishes.
final class CommitWorker: @unchecked Sendable {
    let queue = WorkQueue<IngestCommand>(capacity: 2)
    private let config: SegmenterConfig
    private let stores: PartitionStores
    private let relay: OutboxRelay
    private let consumer: KafkaConsumer
    private let report: (BatchOutcome, DecodedBatch, Int) -> Void
    private let finished = DispatchSemaphore(value: 0)
    private(set) var failure: Error?

    init(config: SegmenterConfig, producer: KafkaProducer, consumer: KafkaConsumer, log: @escaping (String) -> Void,
         report: @escaping (BatchOutcome, DecodedBatch, Int) -> Void) {
        self.config = config
        self.stores = PartitionStores(config: config, log: log)
        self.relay = OutboxRelay(producer: producer)
        self.consumer = consumer
        self.report = report
    }

    func start() {
        Thread.detachNewThread { [self] in
            do { try loop() } catch { failure = error }
            queue.close()
            // Wake a poll thread waiting on an answer that will never come.
            while let command = queue.take(timeout: 0) {
                switch command {
                case let .assigned(_, reply): reply.abandon()
                case let .revoked(_, reply): reply.abandon()
                case .batch: break
                }
            }
            finished.signal()
        }
    }

    /// Stops taking work once the queue is empty, drains the outbox, and waits for the thread.
    func finish() {
        queue.close()
        finished.wait()
    }

    private func loop() throws {
        while true {
            let command = queue.take(timeout: 0.05)
            switch command {
            case let .batch(batch)?: try commit(batch)
            case let .assigned(partitions, reply)?: reply.send(try stores.assign(partitions))
            case let .revoked(partitions, reply)?:
                stores.revoke(partitions)
                relay.forget(partitionsNotIn: stores.open)
                reply.send(true)
            case nil:
                if queue.isClosed {
                    try relay.drain(stores.open, timeoutMs: 10_000)
                    return
                }
            }
            try relay.pump(stores.open)
        }
    }

    private func commit(_ batch: DecodedBatch) throws {
        let receivedAt = Instant(nanoseconds: Int64(Date().timeIntervalSince1970 * 1e9))
        let work = try batch.byPartition.map { (store: try stores.store(for: $0.key), records: $0.value) }
        // Partition databases are independent (own file, connection and cache), so their
        // transactions run side by side; each store is touched by one thread at a time.
        let outcomes = UnsafeMutableBufferPointer<Result<BatchOutcome, Error>>.allocate(capacity: work.count)
        defer { outcomes.deallocate() }
        nonisolated(unsafe) let slots = outcomes
        let deadLetterTopic = config.topics.deadLetters
        DispatchQueue.concurrentPerform(iterations: work.count) { index in
            let item = work[index]
            (slots.baseAddress! + index).initialize(to: Result {
                try item.store.commit(item.records, deadLetterTopic: deadLetterTopic, receivedAt: receivedAt)
            })
        }
        defer { _ = outcomes.baseAddress.map { $0.deinitialize(count: work.count) } }
        var committed: [TopicPartition: Int64] = [:]
        var total = BatchOutcome()
        for (index, item) in work.enumerated() {
            let outcome = try outcomes[index].get()
            total.applied += outcome.applied
            total.duplicates += outcome.duplicates
            total.deadLettered += outcome.deadLettered
            for (topic, next) in outcome.nextOffsets {
                committed[TopicPartition(topic: topic, partition: item.store.partition)] = next
            }
        }
        consumer.commitAsync(committed)  // informational; the truth is in SQLite
        report(total, batch, relay.published)
    }
}
