import ArgumentParser
import DevTools
import Foundation
import SegmenterService
import ServiceRuntime

struct DevBroker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-broker",
        abstract: "Run a local Kafka-protocol broker (librdkafka's mock cluster) for trying things with any client.",
        discussion: """
            Data lives in memory (about 5 MB per partition) and is gone when it stops. A fetch gets one \
            message set per partition, found by walking the partition's sets from the oldest: producers \
            whose messages each make a set (linger.ms near 0 at a steady rate) slow it down the \
            longer it runs; batch them (linger.ms 20-50) for realistic latency. Try: kcat -b 127.0.0.1:9092 -L
            """
    )

    @Option(help: "Loopback port clients bootstrap from.") var port: UInt16 = 9092
    @Option(help: "Number of brokers.") var brokers: Int32 = 1
    @Option(help: "Partitions of each topic created with --topic.") var partitions: Int32 = 4
    @Option(name: .customLong("topic"), help: "Topic to create (repeatable). Others are auto-created with 4 partitions.")
    var topics: [String] = ["activity", "billing", "segmenter-dlq", "segment-membership", "segment-kpi-deltas", "segment-alerts",
                            "segmenter-kpi-partials", "segmenter-state"]

    func run() throws {
        let broker = try DevTools.DevBroker(brokers: brokers, partitions: partitions, topics: topics)
        try broker.listen(port: port)
        say("dev-broker: bootstrap.servers=\(broker.bootstrapServers) (brokers at \(broker.cluster.bootstrapServers))")
        say("topics: \(topics.joined(separator: ", ")) with \(partitions) partitions; Ctrl-C to stop")
        let stop = StopSignal()
        let handlers = installSignalHandlers(stop)
        while !stop.isStopped { Thread.sleep(forTimeInterval: 0.2) }
        _ = handlers
    }
}
