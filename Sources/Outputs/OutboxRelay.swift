import SegmenterCore
import Foundation
import KafkaIO
import SegmenterStore
import ServiceRuntime

/// Moves committed outbox rows to Kafka and deletes them once the broker acknowledges them.
///
/// At least once: a crash between delivery and delete re-sends the row after restart, which is
/// why every output message carries what it needs to be applied idempotently (SPEC §5).
package final class OutboxRelay {
    private let producer: KafkaProducer
    /// Highest outbox id handed to the producer, per partition database.
    private var produced: [Int32: Int64] = [:]
    private var inFlight = 0
    package private(set) var published = 0
    /// Delivered rows not yet deleted, per source: deleted together every `deleteInterval`
    /// (one small transaction per source and interval, not per pump). `produced` keeps them
    /// from being sent again meanwhile; after a crash they are (at least once, as before).
    private var delivered: [Int32: [Int64]] = [:]
    private var lastDelete: ContinuousClock.Instant
    private let clock: any ServiceClock
    private let deleteInterval = Duration.milliseconds(250)
    private(set) var failures = 0
    var lastFailure: KafkaError?
    /// Rows of partition 0's outbox on `watchedTopic` in flight: their delivery is reported to
    /// `onWatchedDelivery` (the KPI leader records where its chain stands on the topic).
    private var watchedRows: Set<Int64> = []
    package var watchedTopic: String?
    package var onWatchedDelivery: ((_ partition: Int32, _ offset: Int64) -> Void)?

    package init(producer: KafkaProducer, clock: any ServiceClock = SystemClock()) {
        self.producer = producer
        self.clock = clock
        lastDelete = clock.monotonicNow
    }

    /// Message ids carry the source partition in the top bits so a delivery report finds its row.
    private static func messageID(partition: Int32, row: Int64) -> Int64 { (Int64(partition) << 40) | row }
    private static func split(_ id: Int64) -> (Int32, Int64) { (Int32(id >> 40), id & ((1 << 40) - 1)) }

    /// Produces new rows of every open store, then applies delivery reports.
    /// - Returns: rows still waiting (queued or in flight).
    @discardableResult
    package func pump(_ stores: [Int32: any OutboxSource], waitMs: Int32 = 0) throws -> Int {
        for (partition, store) in stores where inFlight < 50_000 && store.outboxHighWater > produced[partition] ?? 0 {
            let rows = try store.outbox(after: produced[partition] ?? 0, limit: 10_000)
            for row in rows {
                try producer.produceWaiting(topic: row.topic, key: row.key, value: row.tombstone ? nil : row.value,
                                            messageID: Self.messageID(partition: partition, row: row.id))
                produced[partition] = row.id
                inFlight += 1
                if partition == 0, row.topic == watchedTopic { watchedRows.insert(row.id) }
            }
        }
        for report in producer.poll(timeoutMs: waitMs) {
            inFlight -= 1
            let (partition, row) = Self.split(report.messageID)
            if let error = report.error {
                // Re-send from the first failed row; the idempotent producer keeps order per partition.
                failures += 1
                lastFailure = error
                ServiceMetrics.deliveryFailures.increment()
                if failures == 1 || failures % 1000 == 0 {
                    FileHandle.standardError.write(Data("outbox: delivery failed (\(failures) so far), re-sending from the first failed row: \(error)\n".utf8))
                }
                produced[partition] = min(produced[partition] ?? 0, row - 1)
            } else {
                published += 1
                delivered[partition, default: []].append(row)
                if partition == 0, watchedRows.remove(row) != nil { onWatchedDelivery?(report.partition, report.offset) }
            }
        }
        if clock.monotonicNow - lastDelete >= deleteInterval { try deleteDelivered(stores) }
        return inFlight
    }

    /// Deletes the rows Kafka acknowledged (call before giving a source up, and on drain).
    func deleteDelivered(_ stores: [Int32: any OutboxSource]) throws {
        lastDelete = clock.monotonicNow
        for (partition, rows) in delivered { try stores[partition]?.deleteOutbox(ids: rows) }
        delivered = [:]
    }

    /// Forgets progress for partitions no longer owned (their rows stay in their database).
    package func forget(partitionsNotIn open: [Int32: any OutboxSource]) {
        produced = produced.filter { open[$0.key] != nil }
        delivered = delivered.filter { open[$0.key] != nil }
        if open[0] == nil { watchedRows = [] }
    }

    /// Pumps until nothing is in flight and no rows remain, or the deadline passes.
    package func drain(_ stores: [Int32: any OutboxSource], timeoutMs: Int) throws {
        let deadline = clock.monotonicNow + .milliseconds(timeoutMs)
        while clock.monotonicNow < deadline {
            let waiting = try pump(stores, waitMs: 50)
            try deleteDelivered(stores)
            let depth = try stores.values.reduce(0) { $0 + (try $1.outboxDepth()) }
            if waiting == 0 && depth == 0 { return }
        }
    }
}
