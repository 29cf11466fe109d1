import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore

/// The partition databases this instance currently owns, opened on assignment and closed on
/// revocation. Doubles as the consumer's rebalance listener: assigned partitions start at the
/// offsets stored with their state, never at the group's committed offsets.
///
/// Touched only from the ingest thread (rebalance callbacks run inside `poll` there).
final class PartitionStores: RebalanceListener, @unchecked Sendable {
    private let config: SegmenterConfig
    private let calendar: DayCalendar
    private(set) var open: [Int32: PartitionStore] = [:]
    private var assigned: Set<TopicPartition> = []
    private let log: (String) -> Void

    init(config: SegmenterConfig, log: @escaping (String) -> Void) {
        self.config = config
        self.calendar = config.calendar
        self.log = log
    }

    func store(for partition: Int32) throws -> PartitionStore {
        if let store = open[partition] { return store }
        let store = try PartitionStore(directory: config.stateDirectory, partition: partition, calendar: calendar,
                                       dedupeHorizonSeconds: config.dedupeHorizonSeconds)
        open[partition] = store
        return store
    }

    func partitionsAssigned(_ partitions: [TopicPartition]) -> [TopicPartition: StartOffset] {
        var starts: [TopicPartition: StartOffset] = [:]
        for tp in partitions {
            assigned.insert(tp)
            do {
                let stored = try store(for: tp.partition).storedOffsets()
                if let next = stored[tp.topic] { starts[tp] = .offset(next) }
            } catch {
                // Without its state the partition cannot be consumed safely: start from the
                // beginning is wrong, so fail loudly; the loop's next commit will throw too.
                log("cannot open state for \(tp): \(error)")
            }
        }
        let stored = starts.map { "\($0.key)@\($0.value)" }.sorted().joined(separator: ", ")
        log("assigned \(partitions.map(\.description).sorted().joined(separator: ", ")); "
            + (stored.isEmpty ? "no stored offsets, starting from the beginning" : "resuming at stored offsets \(stored)"))
        return starts
    }

    func partitionsRevoked(_ partitions: [TopicPartition]) {
        for tp in partitions { assigned.remove(tp) }
        let stillNeeded = Set(assigned.map(\.partition))
        for number in Set(partitions.map(\.partition)) where !stillNeeded.contains(number) {
            open[number] = nil
        }
        log("revoked \(partitions.map(\.description).sorted().joined(separator: ", "))")
    }

    var assignedPartitions: Set<TopicPartition> { assigned }
}
