import ArgumentParser
import Foundation
import KafkaIO

/// The baseline for `scripts/bench`: a bare librdkafka consumer that only reads.
struct BenchConsume: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-consume",
        abstract: "Read N messages with a bare librdkafka consumer and print the rate (the benchmark's baseline).",
        shouldDisplay: false
    )

    @Option var bootstrapServers = "127.0.0.1:9092"
    @Option(name: .customLong("topic")) var topics: [String] = ["activity", "billing"]
    @Option var events: Int
    @Option(name: .customLong("set"), help: "A librdkafka property for the consumer, NAME=VALUE (repeatable).")
    var properties: [String] = []

    func run() throws {
        var settings = ["bootstrap.servers": bootstrapServers, "group.id": "bench-bare-\(getpid())"]
        for property in properties {
            guard let equals = property.firstIndex(of: "=") else { throw ValidationError("--set \(property): expected NAME=VALUE") }
            settings[String(property[..<equals])] = String(property[property.index(after: equals)...])
        }
        let consumer = try KafkaConsumer(configuration: KafkaConfiguration(settings), listener: TopicReader())
        try consumer.subscribe(to: topics)
        var count = 0
        var bytes = 0
        var first: Date?
        let deadline = Date().addingTimeInterval(600)
        while count < events, Date() < deadline {
            let batch = try consumer.poll(maxMessages: 20_000, timeoutMs: 100).messages
            if first == nil, !batch.isEmpty { first = Date() }
            count += batch.count
            for message in batch { bytes += message.payload.count }
        }
        let seconds = Date().timeIntervalSince(first ?? Date())
        say("{\"consumed\":\(count),\"bytes\":\(bytes),\"seconds\":\(seconds),\"events_per_second\":\(Int(Double(count) / seconds))}")
    }
}
