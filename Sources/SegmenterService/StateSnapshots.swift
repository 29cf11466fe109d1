import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore

/// Partition state that can move to an instance that never held it, or come back after the
/// local disk is lost (SPEC §7: "restorable from Kafka, not only from the local disk").
///
/// Every `state_snapshot_interval`, each owned partition database that committed since its last
/// snapshot is copied (`VACUUM INTO`: one consistent read of state, offsets and outbox) and
/// produced in pieces to an internal topic, keyed by partition. An instance assigned a partition
/// it holds no usable state for (no file, or offsets pointing at input Kafka already deleted)
/// installs the latest complete snapshot and resumes at the offsets stored in it: the events
/// after the snapshot are consumed again and, deduplicated against the same state, count once.
///
/// Used only on the commit thread.
final class StateSnapshots {
    /// Below Kafka's default message size limit (1,000,000 bytes) with room for the header.
    static let chunkBytes = 512 * 1024

    private let topic: String
    private let producer: KafkaProducer
    private let readerConfiguration: KafkaConfiguration
    private let directory: URL
    private let interval: Duration?
    private let log: (String) -> Void
    /// The offsets of each partition's last snapshot from this process.
    private var snapshotted: [Int32: [String: Int64]] = [:]
    private var roundStarted = ContinuousClock.now
    /// Partitions still to visit in the current round.
    private var due: [Int32]?
    private var roundBytes = 0
    private var roundCount = 0

    init(config: SegmenterConfig, producer: KafkaProducer, log: @escaping (String) -> Void) {
        topic = config.topics.stateSnapshots
        self.producer = producer
        var properties = config.kafka.properties
        properties["group.id"] = (config.kafka["group.id"] ?? "segmenter") + "-restore"
        readerConfiguration = KafkaConfiguration(properties)
        directory = config.stateDirectory
        interval = config.stateSnapshotIntervalSeconds > 0 ? .seconds(config.stateSnapshotIntervalSeconds) : nil
        self.log = log
    }

    /// Snapshots at most one due partition per call, so a round over many partitions never
    /// holds up a batch for long.
    func tick(_ stores: [Int32: PartitionStore]) throws {
        guard let interval else { return }
        if due == nil {
            guard ContinuousClock.now - roundStarted >= interval else { return }
            due = stores.keys.sorted(by: >)
        }
        while let partition = due?.popLast() {
            if let store = stores[partition], try snapshotIfChanged(store) { return }
        }
        if roundCount > 0 {
            log("snapshotted \(roundCount) partition databases (\(roundBytes / 1024) KiB) to \(topic)")
        }
        due = nil
        roundStarted = ContinuousClock.now
        roundBytes = 0
        roundCount = 0
    }

    /// Produces a snapshot of `store` if it committed anything since its last one.
    @discardableResult
    func snapshotIfChanged(_ store: PartitionStore) throws -> Bool {
        let offsets = try store.storedOffsets()
        guard !offsets.isEmpty, snapshotted[store.partition] != offsets else { return false }
        let file = directory.appendingPathComponent(PartitionStore.fileName(partition: store.partition) + ".snapshot")
        defer { try? FileManager.default.removeItem(at: file) }
        try store.writeSnapshot(to: file)
        let bytes = [UInt8](try Data(contentsOf: file))
        let crc = Partitioner.crc32(bytes)
        let count = max(1, (bytes.count + Self.chunkBytes - 1) / Self.chunkBytes)
        let id = UUID().uuidString
        let key = Array(SnapshotChunk.key(partition: store.partition).utf8)
        for index in 0..<count {
            let piece = Array(bytes[(index * Self.chunkBytes)..<min(bytes.count, (index + 1) * Self.chunkBytes)])
            let chunk = SnapshotChunk(partition: store.partition, snapshotID: id, index: index, count: count,
                                      totalBytes: bytes.count, crc32: crc, offsets: offsets, bytes: piece)
            try producer.produceWaiting(topic: topic, key: key, value: chunk.encoded())
        }
        snapshotted[store.partition] = offsets
        roundBytes += bytes.count
        roundCount += 1
        return true
    }

    /// Forgets partitions given up: if one comes back, it is snapshotted again at the next round.
    func forget(_ partitions: some Sequence<Int32>) {
        for partition in partitions { snapshotted[partition] = nil }
    }

    /// Reads the topic once and returns the latest complete snapshot of each of `partitions`
    /// that has one.
    func latest(of partitions: Set<Int32>, timeout: Duration = .seconds(120)) throws -> [Int32: StateSnapshot] {
        guard !partitions.isEmpty, let count = try? producer.partitionCount(of: topic, timeoutMs: 5000) else { return [:] }
        let reader = try KafkaConsumer(configuration: readerConfiguration, listener: nil)
        defer { reader.close() }
        var ends: [TopicPartition: Int64] = [:]
        for number in 0..<Int32(count) {
            let tp = TopicPartition(topic: topic, partition: number)
            let (low, high) = try reader.watermarks(of: tp)
            if high > low { ends[tp] = high }
        }
        guard !ends.isEmpty else { return [:] }
        try reader.assign(ends.mapValues { _ in .beginning })
        var assembler = SnapshotAssembler(partitions: partitions)
        let deadline = ContinuousClock.now + timeout
        while !ends.isEmpty {
            guard ContinuousClock.now < deadline else {
                throw ServiceError("reading state snapshots from \(topic) took longer than \(timeout); still to read: \(ends.keys.map(\.description).sorted())")
            }
            let (messages, errors) = try reader.poll(maxMessages: 1000, timeoutMs: 500)
            for error in errors { log("reading \(topic): \(error)") }
            for message in messages {
                if let chunk = SnapshotChunk.decode(message.payload) { assembler.receive(chunk) }
                let tp = TopicPartition(topic: message.topic, partition: message.partition)
                if let end = ends[tp], message.offset + 1 >= end { ends[tp] = nil }
            }
        }
        if assembler.dropped > 0 { log("\(topic): skipped \(assembler.dropped) incomplete or damaged snapshots (an earlier complete one is used)") }
        return assembler.latest
    }

    /// Writes `snapshot` into the state directory as its partition's database (not open).
    func install(_ snapshot: StateSnapshot) throws {
        let file = directory.appendingPathComponent(PartitionStore.fileName(partition: snapshot.partition) + ".restoring")
        try Data(snapshot.bytes).write(to: file)
        try PartitionStore.install(snapshot: file, directory: directory, partition: snapshot.partition)
        snapshotted[snapshot.partition] = snapshot.offsets
    }
}
