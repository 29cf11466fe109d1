import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceConfig
import ServiceRuntime

/// Reads one partition pair of the input from a start to where it ended when the rebuild
/// began, and applies it to a fresh partition database through the same batch step as `run`.
struct PartitionReplay {
    let config: SegmenterConfig
    let partition: Int32
    let starts: [String: Int64]
    let ends: [String: Int64]
    /// The wall clock: received-at stamps, and the hybrid clock's time.
    let clock: any ServiceClock

    var total: Int64 { ends.reduce(0) { $0 + max(0, $1.value - (starts[$1.key] ?? 0)) } }

    /// - Parameter progress: called with the messages read so far, now and then.
    func apply(to store: PartitionStore, batchSize: Int = 5_000, progress: (Int64) -> Void) throws -> BatchOutcome {
        var total = BatchOutcome()
        let decoder = config.decoder
        let kinds: [String: InputKind] = [config.topics.activity: .activity, config.topics.billing: .billing]
        let remaining = ends.filter { $0.value > (starts[$0.key] ?? 0) }
        var open = Set(remaining.keys)
        if !open.isEmpty {
            var properties = config.readerKafka("rebuild").properties
            properties["enable.partition.eof"] = "false"
            let consumer = try KafkaConsumer(configuration: KafkaConfiguration(properties), listener: nil)
            defer { consumer.close() }
            try consumer.assign(Dictionary(uniqueKeysWithValues: remaining.keys.map {
                (TopicPartition(topic: $0, partition: partition), StartOffset.offset(starts[$0] ?? 0))
            }))
            var read: Int64 = 0
            var idleMs = 0
            while !open.isEmpty {
                let (messages, _) = try consumer.poll(maxMessages: batchSize, timeoutMs: 200)
                idleMs = messages.isEmpty ? idleMs + 200 : 0
                if idleMs >= 120_000 {
                    throw ServiceError("rebuild: nothing more came from \(open.sorted().map { "\($0)[\(partition)]" }.joined(separator: ", ")) for 120 s before its end")
                }
                let wallClock = clock.wallNow
                var records: [DecodedRecord] = []
                for message in messages {
                    guard let end = ends[message.topic], message.offset < end else { continue }
                    records.append(DecodedRecord(topic: message.topic, partition: message.partition, offset: message.offset, key: message.key,
                                                 payload: message.payload,
                                                 decoded: decoder.decode(message.payload, from: kinds[message.topic] ?? .activity, wallClock: wallClock)))
                    if message.offset + 1 >= end { open.remove(message.topic) }
                }
                guard !records.isEmpty else { continue }
                read += Int64(records.count)
                total.add(try store.commit(records, receivedAt: wallClock, inputEnds: .known(ends)))
                progress(read)
            }
        }
        // Both inputs are read to where they ended: the pair's clock moves to its latest event
        // (with `clock: hybrid`, to the wall clock), and the timers due by then fire.
        let now = clock.wallNow
        total.add(try store.advance(inputEnds: .allRead, wallClock: config.clock == .hybrid ? now : nil, receivedAt: now))
        return total
    }
}
