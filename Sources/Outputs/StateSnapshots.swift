import Foundation
import Logging
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceConfig
import ServiceRuntime

/// Partition state that can move to an instance that never held it, or come back after the
/// local disk is lost (SPEC §7: "restorable from Kafka, not only from the local disk").
///
/// Every `state_snapshot_interval`, each owned partition database that committed since its last
/// snapshot is copied (`VACUUM INTO`: one consistent read of state, offsets and outbox) and
/// produced in pieces to an internal topic, alternating between two slots of keys per partition
/// (see `SnapshotChunk`). An instance assigned a partition it holds no usable state for (no
/// file, offsets pointing at input Kafka already deleted, or behind where the group got) installs
/// the latest complete snapshot and resumes at the offsets stored in it: the events after the
/// snapshot are consumed again and, deduplicated against the same state, count once.
///
/// Used only on the commit thread.
public final class StateSnapshots {
    /// Below Kafka's default message size limit (1,000,000 bytes) with room for the header.
    static let chunkBytes = 512 * 1024

    private let topic: String
    private let producer: KafkaProducer
    private let readerConfiguration: KafkaConfiguration
    private let directory: URL
    private let interval: Duration?
    private let logger: Logger
    /// The offsets of each partition's last snapshot from this process.
    private var snapshotted: [Int32: [String: Int64]] = [:]
    /// The slot each partition's last snapshot went to, when known without asking its database.
    private var lastSlot: [Int32: Int] = [:]
    private var topicPartitions: Int32?
    private let group: String
    private var roundStarted: ContinuousClock.Instant
    private let clock: any ServiceClock
    /// Partitions still to visit in the current round.
    private var due: [Int32]?
    private var roundBytes = 0
    private var roundCount = 0
    /// "partition 1 at activity@120 billing@40" for each partition the round snapshotted.
    private var roundPartitions: [String] = []

    public init(config: SegmenterConfig, producer: KafkaProducer, clock: any ServiceClock = SystemClock(), logger: Logger) {
        self.clock = clock
        roundStarted = clock.monotonicNow
        topic = config.topics.stateSnapshots
        self.producer = producer
        readerConfiguration = config.readerKafka("restore")
        group = config.kafka.groupID
        directory = config.stateDirectory
        interval = config.stateSnapshotIntervalSeconds > 0 ? .seconds(config.stateSnapshotIntervalSeconds) : nil
        self.logger = logger.component("snapshots")
    }

    /// Snapshots at most one due partition per call, so a round over many partitions never
    /// holds up a batch for long. A failure is logged and retried next round: the state itself is
    /// durable on the local disk.
    package func tick(_ stores: [Int32: PartitionStore]) {
        guard let interval else { return }
        if due == nil {
            guard clock.monotonicNow - roundStarted >= interval else { return }
            due = stores.keys.sorted(by: >)
        }
        while let partition = due?.popLast() {
            guard let store = stores[partition] else { continue }
            do {
                if try snapshotIfChanged(store) { return }
            } catch {
                logger.warning("snapshot of partition \(partition) to \(topic) failed (\(error)); next try in \(interval)",
                               metadata: ["partition": "\(partition)", "topic": "\(topic)"])
            }
        }
        if roundCount > 0 {
            logger.info("snapshotted \(roundCount) partition databases (\(roundBytes / 1024) KiB) to \(topic): \(roundPartitions.joined(separator: "; "))")
        }
        due = nil
        roundStarted = clock.monotonicNow
        roundBytes = 0
        roundCount = 0
        roundPartitions = []
    }

    /// Produces a snapshot of `store` if it committed anything since its last one.
    @discardableResult
    public func snapshotIfChanged(_ store: PartitionStore) throws -> Bool {
        let offsets = try store.storedOffsets()
        guard !offsets.isEmpty, snapshotted[store.partition] != offsets else { return false }
        let file = directory.appendingPathComponent(PartitionStore.fileName(partition: store.partition) + ".snapshot")
        defer { try? FileManager.default.removeItem(at: file) }
        try store.writeSnapshot(to: file)
        let bytes = [UInt8](try Data(contentsOf: file))
        let crc = Partitioner.crc32(bytes)
        let count = max(1, (bytes.count + Self.chunkBytes - 1) / Self.chunkBytes)
        let id = UUID().uuidString
        let slot = 1 - (try lastSlot[store.partition] ?? store.lastSnapshotSlot() ?? 1)
        // All of a partition's pieces go to one partition of the topic: read back in order, and
        // a restore reads only the topic partitions of the partitions it restores.
        let target = store.partition % (try topicPartitionCount())
        for index in 0..<count {
            let piece = Array(bytes[(index * Self.chunkBytes)..<min(bytes.count, (index + 1) * Self.chunkBytes)])
            let chunk = SnapshotChunk(partition: store.partition, group: group, snapshotID: id, slot: slot, index: index, count: count,
                                      totalBytes: bytes.count, crc32: crc, offsets: offsets, bytes: piece)
            try producer.produceWaiting(topic: topic, key: Array(chunk.key.utf8), value: chunk.encoded(), partition: target)
        }
        try store.setLastSnapshotSlot(slot)
        lastSlot[store.partition] = slot
        snapshotted[store.partition] = offsets
        roundBytes += bytes.count
        roundCount += 1
        roundPartitions.append("partition \(store.partition) at " + offsets.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" }.joined(separator: " "))
        ServiceMetrics.snapshots.increment()
        ServiceMetrics.snapshotBytes.increment(by: bytes.count)
        return true
    }

    /// Forgets partitions given up: if one comes back, it is snapshotted again at the next round.
    package func forget(_ partitions: some Sequence<Int32>) {
        for partition in partitions {
            snapshotted[partition] = nil
            lastSlot[partition] = nil
        }
    }

    /// Reads the topic once and returns the latest complete snapshot of each of `partitions`
    /// that has one.
    public func latest(of partitions: Set<Int32>) throws -> [Int32: StateSnapshot] {
        guard !partitions.isEmpty, let count = try? topicPartitionCount() else { return [:] }
        var assembler = SnapshotAssembler(partitions: partitions, group: group)
        try TopicReader(configuration: readerConfiguration).readToEnd(topic, only: Set(partitions.map { $0 % count })) { message in
            if let chunk = SnapshotChunk.decode(message.payload) { assembler.receive(chunk) }
        }
        if assembler.foreign > 0 {
            logger.info("\(topic) also holds snapshots of other consumer groups; they are ignored (give each deployment its own topic)")
        }
        if assembler.droppedIncludingUnfinished > 0 {
            logger.info("\(topic): skipped \(assembler.droppedIncludingUnfinished) incomplete or damaged snapshots (an earlier complete one is used)")
        }
        return assembler.latest
    }

    private func topicPartitionCount() throws -> Int32 {
        if let topicPartitions { return topicPartitions }
        let count: Int32
        do {
            count = Int32(try producer.partitionCount(of: topic, timeoutMs: 10_000))
        } catch {
            throw ServiceError("topic \(topic) is not there (\(error)); create it, compacted: "
                + "kafka-topics --create --topic \(topic) --config cleanup.policy=compact")
        }
        topicPartitions = count
        return count
    }

    /// Writes `snapshot` into the state directory as its partition's database (not open).
    public func install(_ snapshot: StateSnapshot) throws {
        let file = directory.appendingPathComponent(PartitionStore.fileName(partition: snapshot.partition) + ".restoring")
        try Data(snapshot.bytes).write(to: file)
        try PartitionStore.install(snapshot: file, directory: directory, partition: snapshot.partition)
        snapshotted[snapshot.partition] = snapshot.offsets
        lastSlot[snapshot.partition] = snapshot.slot
        ServiceMetrics.restores.increment()
    }
}
