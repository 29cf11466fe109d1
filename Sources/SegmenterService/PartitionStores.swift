import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore

/// The partition databases this instance currently owns, opened on assignment and closed on
/// revocation. Assigned partitions start at the offsets stored with their state, never at the
/// group's committed offsets.
///
/// Touched only from the commit thread.
final class PartitionStores {
    private let config: SegmenterConfig
    private let calendar: DayCalendar
    private(set) var open: [Int32: PartitionStore] = [:]
    private var assigned: Set<TopicPartition> = []
    private let log: (String) -> Void
    private let checkpointer = WALCheckpointer()

    deinit { checkpointer.stop() }

    init(config: SegmenterConfig, log: @escaping (String) -> Void) {
        self.config = config
        self.calendar = config.calendar
        self.log = log
    }

    func store(for partition: Int32) throws -> PartitionStore {
        if let store = open[partition] { return store }
        let store = try PartitionStore(directory: config.stateDirectory, partition: partition, calendar: calendar,
                                       dedupeHorizonSeconds: config.dedupeHorizonSeconds,
                                       segments: SegmentSetup(catalog: config.catalog, membershipTopic: config.topics.membership))
        let changes = try store.applyDefinitionChanges()
        if changes > 0 { log("partition \(partition): segment definitions changed; re-evaluated everyone, \(changes) membership changes (cause config)") }
        open[partition] = store
        checkpointer.watch(store.path)
        return store
    }

    /// Opens the state of newly assigned partitions and says where each should resume.
    func assign(_ partitions: [TopicPartition]) throws -> [TopicPartition: StartOffset] {
        var starts: [TopicPartition: StartOffset] = [:]
        for tp in partitions {
            assigned.insert(tp)
            if let next = try store(for: tp.partition).storedOffsets()[tp.topic] { starts[tp] = .offset(next) }
        }
        let stored = starts.map { "\($0.key)@\($0.value)" }.sorted().joined(separator: ", ")
        log("assigned \(partitions.map(\.description).sorted().joined(separator: ", ")); "
            + (stored.isEmpty ? "no stored offsets: starting where auto.offset.reset says (default: the beginning)" : "resuming at stored offsets \(stored)"))
        return starts
    }

    /// Closes the databases of partition numbers no longer assigned on either topic.
    func revoke(_ partitions: [TopicPartition]) {
        for tp in partitions { assigned.remove(tp) }
        let stillNeeded = Set(assigned.map(\.partition))
        for number in Set(partitions.map(\.partition)) where !stillNeeded.contains(number) {
            if let store = open.removeValue(forKey: number) {
                checkpointer.forget(store.path)
                do { try store.checkpoint() } catch { log("partition \(number): final checkpoint failed (the WAL stays; nothing is lost): \(error)") }
            }
        }
        log("revoked \(partitions.map(\.description).sorted().joined(separator: ", "))")
    }
}
