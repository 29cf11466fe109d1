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

    /// Opens the state of newly assigned partitions and says where each should resume. A
    /// partition with no usable local state (no offsets, or offsets before the input's earliest
    /// retained message) is first restored from its latest snapshot in Kafka, if that is ahead.
    /// - Parameter earliestOffset: the input partition's low watermark, if it can be read.
    func assign(_ partitions: [TopicPartition], snapshots: StateSnapshots?,
                earliestOffset: (TopicPartition) -> Int64?) throws -> [TopicPartition: StartOffset] {
        if let snapshots { try restoreUnusable(partitions, from: snapshots, earliestOffset: earliestOffset) }
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

    private func restoreUnusable(_ partitions: [TopicPartition], from snapshots: StateSnapshots,
                                 earliestOffset: (TopicPartition) -> Int64?) throws {
        var local: [Int32: [String: Int64]] = [:]
        var unusable: Set<Int32> = []
        for number in Set(partitions.map(\.partition)) where open[number] == nil {
            let offsets = try PartitionStore.storedOffsets(directory: config.stateDirectory, partition: number)
            local[number] = offsets
            let expired = partitions.contains { tp in
                guard tp.partition == number, let next = offsets[tp.topic], let earliest = earliestOffset(tp) else { return false }
                return next < earliest
            }
            if offsets.isEmpty || expired { unusable.insert(number) }
        }
        guard !unusable.isEmpty else { return }
        let found = try snapshots.latest(of: unusable)
        for number in unusable.sorted() {
            let mine = local[number] ?? [:]
            guard let snapshot = found[number],
                  snapshot.offsets.allSatisfy({ $0.value >= mine[$0.key] ?? 0 }), snapshot.offsets != mine else {
                if !mine.isEmpty {
                    log("partition \(number): WARNING its state stopped before the earliest input Kafka still holds and no later "
                        + "snapshot exists in \(config.topics.stateSnapshots): the events in between are lost to it")
                }
                continue
            }
            try snapshots.install(snapshot)
            log("partition \(number): restored from its snapshot in Kafka (\(snapshot.bytes.count / 1024) KiB); resuming at "
                + snapshot.offsets.map { "\($0.key)@\($0.value)" }.sorted().joined(separator: ", ")
                + (mine.isEmpty ? " (no local state)" : " (local state stopped at \(mine.map { "\($0.key)@\($0.value)" }.sorted().joined(separator: ", ")), before input Kafka no longer holds)"))
        }
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
