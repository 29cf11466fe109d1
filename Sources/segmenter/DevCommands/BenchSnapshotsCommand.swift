import ArgumentParser
import Foundation
import Logging
import KafkaIO
import SegmenterCore
import SegmenterService
import SegmenterStore
import Outputs

/// `scripts/bench` state snapshots: one round over every partition database of a stopped
/// service's state directory into Kafka, then a restore of all of them into an empty directory
/// (what an instance that lost its disk, or takes every partition over, does).
struct BenchSnapshots: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-snapshots",
        abstract: "Time a snapshot round of the state directory into Kafka, and a restore of it.",
        shouldDisplay: false
    )
    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        let producer = try KafkaProducer(configuration: config.kafka)
        let names = try FileManager.default.contentsOfDirectory(atPath: config.stateDirectory.path)
            .filter { $0.hasPrefix("partition-") && $0.hasSuffix(".sqlite") }
        let partitions = Set(names.compactMap { Int32($0.dropFirst("partition-".count).dropLast(".sqlite".count)) })
        let stores = try partitions.sorted().map { try PartitionStore(directory: config.stateDirectory, partition: $0, calendar: config.calendar) }
        // One round, as a fresh process takes it (every partition counts as changed). The dev
        // broker keeps only ~5 MB per partition: one round of the bench state fits, two may not.
        let taker = StateSnapshots(config: config, producer: producer, logger: Logger(label: "bench-snapshots", factory: { _ in SwiftLogNoOpLogHandler() }))
        let started = Date()
        for store in stores { try taker.snapshotIfChanged(store) }
        try producer.flush(timeoutMs: 120_000)
        let snapshotSeconds = Date().timeIntervalSince(started)

        var elsewhere = config
        elsewhere.stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-restore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: elsewhere.stateDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: elsewhere.stateDirectory) }
        let restorer = StateSnapshots(config: elsewhere, producer: producer, logger: Logger(label: "bench-snapshots", factory: { _ in SwiftLogNoOpLogHandler() }))
        let restoreStarted = Date()
        let found = try restorer.latest(of: partitions)
        for snapshot in found.values { try restorer.install(snapshot) }
        let restoreSeconds = Date().timeIntervalSince(restoreStarted)

        var mismatched = 0
        for store in stores where try PartitionStore.storedOffsets(directory: elsewhere.stateDirectory, partition: store.partition) != store.storedOffsets() {
            mismatched += 1
        }
        let bytes = found.values.reduce(0) { $0 + $1.bytes.count }
        say("{\"partitions\":\(partitions.count),\"restored\":\(found.count),\"offsets_mismatched\":\(mismatched),\"bytes\":\(bytes),"
            + "\"snapshot_seconds\":\(snapshotSeconds),\"restore_seconds\":\(restoreSeconds),"
            + "\"snapshot_mib_per_second\":\(Double(bytes) / 1_048_576 / max(snapshotSeconds, 1e-9)),"
            + "\"restore_mib_per_second\":\(Double(bytes) / 1_048_576 / max(restoreSeconds, 1e-9))}")
    }
}
