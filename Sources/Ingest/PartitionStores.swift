import Foundation
import Logging
import ServiceRuntime
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceConfig
import Outputs

/// The partition databases this instance currently owns, opened on assignment and closed on
/// revocation. Assigned partitions start at the offsets stored with their state, never at the
/// group's committed offsets.
///
/// Touched only from the commit thread.
final class PartitionStores {
    private let config: SegmenterConfig
    private let calendar: DayCalendar
    private(set) var open: [Int32: PartitionStore] = [:]
    /// Metrics already logged as counting only from a later instant (once per process, not per partition).
    private var reportedMetricChanges: Set<String> = []
    private var assigned: Set<TopicPartition> = []
    private let logger: Logger
    /// The skipped offsets' record is stamped with it.
    private let clock: any ServiceClock
    private let checkpointer = WALCheckpointer()

    deinit { checkpointer.stop() }

    /// The input topics' partition count, when known: the user cache is split over it.
    private let partitionCount: Int?

    init(config: SegmenterConfig, partitionCount: Int?, clock: any ServiceClock, logger: Logger) {
        self.config = config
        self.clock = clock
        self.partitionCount = partitionCount
        self.calendar = config.calendar
        self.logger = logger.component("partitions")
    }

    func store(for partition: Int32) throws -> PartitionStore {
        if let store = open[partition] { return store }
        let store = try config.openPartition(partition, partitionCount: partitionCount ?? max(assigned.count / 2, 1))
        let changes = try store.applyDefinitionChanges()
        if changes > 0 {
            logger.info("partition \(partition): segment definitions changed; re-evaluated everyone, \(changes) membership changes (cause config)",
                        metadata: ["partition": "\(partition)"])
        }
        for change in try store.metricDefinitionChanges() where reportedMetricChanges.insert(change.name).inserted {
            logger.notice("\(change.description)", metadata: ["partition": "\(partition)", "metric": "\(change.name)"])
        }
        open[partition] = store
        checkpointer.watch(store.path)
        return store
    }

    /// What Kafka knows of an input partition beyond this instance's state.
    struct InputHistory {
        /// The offsets the broker still holds (nil: it did not answer).
        var watermarks: (TopicPartition) -> (low: Int64, high: Int64)?
        /// The earliest offset the broker still holds.
        var earliest: (TopicPartition) -> Int64? { { watermarks($0)?.low } }
        /// How far the consumer group got (committed next offsets), e.g. another instance before
        /// the partition moved here.
        var groupProgress: ([TopicPartition]) -> [TopicPartition: Int64]
    }

    /// Opens the state of newly assigned partitions and says where each should resume. A
    /// partition whose local state is missing or behind (no offsets, offsets before the input's
    /// earliest retained message, or behind where the group got) is first restored from its
    /// latest snapshot in Kafka, if that is further along. Where the group got further than the
    /// state resumes, the users in between have their memberships published again.
    func assign(_ partitions: [TopicPartition], snapshots: StateSnapshots?, history: InputHistory) throws -> [TopicPartition: StartOffset] {
        let progress = history.groupProgress(partitions)
        if let snapshots { try restoreUnusable(partitions, from: snapshots, earliest: history.earliest, progress: progress) }
        var starts: [TopicPartition: StartOffset] = [:]
        var restating: [String] = []
        for tp in partitions {
            assigned.insert(tp)
            let store = try store(for: tp.partition)
            var next = try store.storedOffsets()[tp.topic]
            // Input deleted before it was consumed (retention ran ahead of a stopped service):
            // where to continue is `offset_reset`'s, and what is skipped is never silent.
            if let requested = next, let held = history.watermarks(tp), requested < held.low || requested > held.high {
                next = try SkippedInput.resume(tp, requested: requested, low: held.low, high: held.high, policy: config.offsetReset,
                                               store: store, at: clock.wallNow, logger: logger)
            }
            if let next { starts[tp] = .offset(next) }
            if let reached = progress[tp], reached > next ?? 0 {
                store.restateUntil[tp.topic] = reached
                restating.append("\(tp)@\(next ?? 0)..<\(reached)")
            }
        }
        if !restating.isEmpty {
            logger.notice("the group got further than this state with \(restating.sorted().joined(separator: ", ")): users of those messages get their memberships published again")
        }
        let stored = starts.map { "\($0.key)@\($0.value)" }.sorted().joined(separator: ", ")
        let start = stored.isEmpty ? "no stored offsets: starting where ingest.offset_reset says (default: earliest, the beginning)" : "resuming at stored offsets \(stored)"
        logger.info("assigned \(partitions.map(\.description).sorted().joined(separator: ", ")); \(start)")
        return starts
    }

    private func restoreUnusable(_ partitions: [TopicPartition], from snapshots: StateSnapshots,
                                 earliest: (TopicPartition) -> Int64?, progress: [TopicPartition: Int64]) throws {
        var local: [Int32: [String: Int64]] = [:]
        var unusable: Set<Int32> = []
        /// Local state that stopped before the input Kafka still holds (each check asks the broker).
        var expired: Set<Int32> = []
        for number in Set(partitions.map(\.partition)) where open[number] == nil {
            let offsets = try PartitionStore.storedOffsets(directory: config.stateDirectory, partition: number)
            local[number] = offsets
            let mine = partitions.filter { $0.partition == number }
            if mine.contains(where: { tp in offsets[tp.topic].map { next in earliest(tp).map { next < $0 } ?? false } ?? false }) {
                expired.insert(number)
            }
            let overtaken = mine.contains { tp in progress[tp].map { $0 > offsets[tp.topic] ?? 0 } ?? false }
            if offsets.isEmpty || overtaken || expired.contains(number) { unusable.insert(number) }
        }
        guard !unusable.isEmpty else { return }
        var found: [Int32: StateSnapshot] = [:]
        do {
            found = try snapshots.latest(of: unusable)
        } catch {
            logger.error("cannot read state snapshots (\(error)); partitions \(unusable.sorted()) resume from their local state or the input")
        }
        for number in unusable.sorted() {
            let mine = local[number] ?? [:]
            guard let snapshot = found[number], snapshot.isAhead(of: mine) else {
                if expired.contains(number) {
                    logger.error("partition \(number): WARNING its state stopped before the earliest input Kafka still holds and no later snapshot exists in \(config.topics.stateSnapshots): the events in between are lost to it",
                                 metadata: ["partition": "\(number)"])
                }
                continue
            }
            try snapshots.install(snapshot)
            let resumes = snapshot.offsets.map { "\($0.key)@\($0.value)" }.sorted().joined(separator: ", ")
            let before = mine.isEmpty ? "no local state" : "local state was behind, at \(mine.map { "\($0.key)@\($0.value)" }.sorted().joined(separator: ", "))"
            logger.notice("partition \(number): restored from its snapshot in Kafka (\(snapshot.bytes.count / 1024) KiB); resuming at \(resumes) (\(before))",
                          metadata: ["partition": "\(number)"])
        }
    }

    /// Closes the databases of partition numbers no longer assigned on either topic.
    func revoke(_ partitions: [TopicPartition]) {
        for tp in partitions { assigned.remove(tp) }
        let stillNeeded = Set(assigned.map(\.partition))
        for number in Set(partitions.map(\.partition)) where !stillNeeded.contains(number) {
            if let store = open.removeValue(forKey: number) {
                checkpointer.forget(store.path)
                do { try store.checkpoint() } catch {
                    logger.warning("partition \(number): final checkpoint failed (the WAL stays; nothing is lost): \(error)", metadata: ["partition": "\(number)"])
                }
            }
        }
        logger.info("revoked \(partitions.map(\.description).sorted().joined(separator: ", "))")
    }
}
