import Foundation
import Logging
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceConfig
import ServiceRuntime
import Outputs
import Ingest

/// `segmenter rebuild`: re-derives the state from the input while `run` is stopped (after a
/// fix to a rule that reads history, or a longer window), then publishes only the net
/// differences against what was last published, cause `rebuild`: downstream sees a
/// correction, not every membership announced again.
///
/// Each partition is replayed into a scratch database beside the state, then adopted into its
/// partition database in one transaction (`PartitionStore.adoptRebuilt`): a crash before the
/// adoption leaves the old state untouched, and `rebuild` can simply run again.
public struct StateRebuilder {
    public enum Start: Sendable, Equatable {
        case earliest
        /// The first message at or after this time (Kafka's message timestamps).
        case time(Instant)
    }

    public struct Report: Sendable {
        public var partitions: [Int32: RebuildAdoption] = [:]
        public var replayed: Int64 = 0
        public var applied = 0
        public var seconds = 0.0
        /// Outbox rows Kafka did not take before the rebuild ended: the next `run` publishes them.
        public var unpublished = 0
        /// Rebuilt partitions snapshotted to the state topic.
        public var snapshots = 0
    }

    let config: SegmenterConfig
    let start: Start
    let logger: Logger
    let clock: any ServiceClock

    public init(config: SegmenterConfig, start: Start, logger: Logger, clock: any ServiceClock = SystemClock()) {
        self.config = config
        self.start = start
        self.logger = logger.component("rebuild")
        self.clock = clock
    }

    public func run() throws -> Report {
        let began = clock.monotonicNow
        try FileManager.default.createDirectory(at: config.stateDirectory, withIntermediateDirectories: true)
        let lock = try StateDirectoryLock(directory: config.stateDirectory)
        defer { lock.release() }
        let producer = try KafkaProducer(configuration: config.kafka)
        let partitionCount = try inputPartitionCount(producer)
        let scratch = config.stateDirectory.appendingPathComponent("rebuild-scratch")
        try? FileManager.default.removeItem(at: scratch)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var scratchConfig = config
        scratchConfig.stateDirectory = scratch

        let replays = try plan(partitionCount: partitionCount, producer: producer)
        let total = replays.reduce(0) { $0 + $1.total }
        logger.info("rebuilding \(partitionCount) partitions from \(describe(start)): \(total) messages to replay into \(scratch.path)")
        var report = Report()
        let meter = ProgressMeter(total: total, logger: logger, clock: clock)
        for replay in replays {
            let outcome: BatchOutcome
            do {
                let store = try scratchConfig.openPartition(replay.partition, partitionCount: partitionCount)
                let done = report.replayed
                outcome = try replay.apply(to: store) { meter.update(done + $0) }
                try store.checkpoint()
            }
            report.replayed += replay.total
            report.applied += outcome.applied
        }
        meter.finish()

        // Adopt every partition, then publish: the differences, and the KPIs they moved.
        let access = try DirectStoreAccess(config: config, partitionCount: partitionCount, applyingDefinitionChanges: false)
        for (partition, store) in access.stores.sorted(by: { $0.key < $1.key }) {
            let rebuilt = scratch.appendingPathComponent(PartitionStore.fileName(partition: partition)).path
            report.partitions[partition] = try store.adoptRebuilt(from: rebuilt)
        }
        access.note(.rebuild, segments: config.catalog.segmentNames)
        report.unpublished = try access.publishOutputs(config: config, timeoutMs: 30_000)
        // The snapshots in Kafka are older than the rebuilt state: replace them, so an instance
        // that takes a partition over from an empty state directory restores the rebuilt one.
        if config.stateSnapshotIntervalSeconds > 0 {
            let snapshots = StateSnapshots(config: config, producer: producer, logger: logger)
            for store in access.stores.values where try snapshots.snapshotIfChanged(store) { report.snapshots += 1 }
            logger.info("published a snapshot of each of \(report.snapshots) rebuilt partitions to \(config.topics.stateSnapshots)")
        }
        report.seconds = (clock.monotonicNow - began).seconds
        return report
    }

    private func inputPartitionCount(_ producer: KafkaProducer) throws -> Int {
        let counts = try [config.topics.activity, config.topics.billing].map { try producer.partitionCount(of: $0, timeoutMs: 10_000) }
        guard counts[0] == counts[1] else {
            throw ServiceError("\(config.topics.activity) has \(counts[0]) partitions and \(config.topics.billing) \(counts[1]): inputs must be co-partitioned")
        }
        return counts[0]
    }

    /// Where each partition pair's replay starts and ends (the ends as they are now).
    private func plan(partitionCount: Int, producer: KafkaProducer) throws -> [PartitionReplay] {
        let topics = [config.topics.activity, config.topics.billing]
        let all = (0..<Int32(partitionCount)).flatMap { partition in topics.map { TopicPartition(topic: $0, partition: partition) } }
        var ends: [TopicPartition: Int64] = [:]
        var starts: [TopicPartition: Int64] = [:]
        for tp in all {
            let (low, high) = try producer.watermarks(of: tp, timeoutMs: 10_000)
            ends[tp] = high
            starts[tp] = low
        }
        if case let .time(instant) = start {
            let reader = try KafkaConsumer(configuration: config.readerKafka("rebuild"), listener: nil)
            defer { reader.close() }
            starts = try reader.offsets(atOrAfter: instant.nanoseconds / 1_000_000, of: all)
        }
        return (0..<Int32(partitionCount)).map { partition in
            let mine = all.filter { $0.partition == partition }
            return PartitionReplay(config: config, partition: partition,
                                   starts: Dictionary(uniqueKeysWithValues: mine.map { ($0.topic, starts[$0] ?? 0) }),
                                   ends: Dictionary(uniqueKeysWithValues: mine.map { ($0.topic, ends[$0] ?? 0) }), clock: clock)
        }
    }

    private func describe(_ start: Start) -> String {
        switch start {
        case .earliest: "the earliest input Kafka holds"
        case let .time(instant): "the first input at or after \(instant)"
        }
    }
}

/// Messages replayed so far, with rate and ETA, at most every two seconds.
final class ProgressMeter {
    private let total: Int64
    private let logger: Logger
    private let clock: any ServiceClock
    private let started: ContinuousClock.Instant
    private var lastReport: ContinuousClock.Instant
    private var done: Int64 = 0

    init(total: Int64, logger: Logger, clock: any ServiceClock) {
        self.total = total
        self.logger = logger.component("rebuild")
        self.clock = clock
        started = clock.monotonicNow
        lastReport = started
    }

    func update(_ done: Int64) {
        self.done = done
        let now = clock.monotonicNow
        guard now - lastReport >= .seconds(2) else { return }
        lastReport = now
        let seconds = (now - started).seconds
        let rate = Double(done) / max(seconds, 0.001)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        logger.info("\(String(format: "replayed %lld of %lld messages (%.0f%%), %.0f/s, about %.0f s left", done, total, 100 * Double(done) / Double(max(total, 1)), rate, eta))")
    }

    func finish() {
        let seconds = (clock.monotonicNow - started).seconds
        logger.info("\(String(format: "replayed %lld messages in %.1f s (%.0f/s)", done, seconds, Double(done) / max(seconds, 0.001)))")
    }
}
