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
    /// Work on the owned partition databases between two batches (reconciliation); called
    /// with nil if the commit thread stopped before getting to it.
    case exclusive(@Sendable (StoreSession?) -> Void)
}

struct DecodedBatch {
    var byPartition: [Int32: [DecodedRecord]] = [:]
    var consumed = 0
    var keyMismatches = 0
    /// When the batch's first messages were polled (the earliest, once batches merge).
    var polledAt: ContinuousClock.Instant

    init(polledAt: ContinuousClock.Instant) { self.polledAt = polledAt }

    /// Appends a later batch (records stay in offset order per partition).
    mutating func append(_ later: DecodedBatch) {
        for (partition, records) in later.byPartition { byPartition[partition, default: []].append(contentsOf: records) }
        consumed += later.consumed
        keyMismatches += later.keyMismatches
        polledAt = min(polledAt, later.polledAt)
    }
}

extension IngestCommand {
    /// Merges a batch into a waiting batch while the result stays within `limit` messages.
    static func merge(limit: Int) -> (inout IngestCommand, IngestCommand) -> Bool {
        { waiting, new in
            guard case var .batch(pending) = waiting, case let .batch(more) = new, pending.consumed + more.consumed <= limit else { return false }
            pending.append(more)
            waiting = .batch(pending)
            return true
        }
    }
}

