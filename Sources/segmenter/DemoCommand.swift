import ArgumentParser
import Foundation
import KafkaIO
import SegmenterCore
import SegmenterService
import SegmenterStore

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Everything embedded: an in-process Kafka, generated events, ingest, and what came out.",
        discussion: "Nothing to install beyond the build. State goes to a temporary directory unless --state-dir is given."
    )

    @Option(help: "Number of users.") var users = 2000
    @Option(help: "Number of events.") var events = 60_000
    @Option(help: "Events per second produced into the broker.") var rate = 20_000.0
    @Option(help: "State directory (default: a new temporary one).") var stateDir: String?

    func run() throws {
        let logger = makeLogger()
        let broker = try SegmenterService.DevBroker(brokers: 1, partitions: 4, topics: ["activity", "billing", "segmenter-dlq"])
        say("== segmenter demo: in-process Kafka at \(broker.bootstrapServers)")

        var config = SegmenterConfig()
        config.kafka = KafkaConfiguration(["bootstrap.servers": broker.bootstrapServers, "group.id": "segmenter-demo"])
        config.fx = ["EUR": ExchangeRate("1.08")!]
        config.stateDirectory = stateDir.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("segmenter-demo-\(getpid())")
        say("== state in \(config.stateDirectory.path)")

        var options = EventGenerator.Options()
        options.users = users
        options.events = events
        options.duplicateRate = 0.01
        options.invalidRate = 0.005
        let messages = EventGenerator(options: options).messages()
        say("== producing \(messages.count) events for \(users) users over \(options.days) days at \(Int(rate))/s "
            + "(\(messages.filter { !$0.valid }.count) invalid, \(messages.filter(\.duplicate).count) duplicates)")
        var producer: KafkaProducer? = try KafkaProducer(configuration: config.kafka)
        let bootstrap = broker.bootstrapServers
        Thread.detachNewThread { [rate, producer] in
            guard let producer else { return }
            do {
                try GeneratorRunner.produce(messages, producer: producer, activityTopic: "activity", billingTopic: "billing",
                                            ratePerSecond: rate)
            } catch { say("generator failed: \(error) (\(bootstrap))") }
        }

        let stop = StopSignal()
        let handlers = installSignalHandlers(stop)
        let service = IngestService(config: config, logger: logger)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { try service.run(until: stop) } catch { say("ingest failed: \(error)"); stop.stop() }
            done.signal()
        }
        let started = Date()
        while !stop.isStopped {
            Thread.sleep(forTimeInterval: 1)
            let c = service.counters
            say(String(format: "[%5.1fs] consumed %7d  applied %7d  duplicates %5d  dead-lettered %4d  published %4d",
                       Date().timeIntervalSince(started), c.consumed, c.applied, c.duplicates, c.deadLettered, c.published))
            if c.consumed >= messages.count && c.published >= c.deadLettered { break }
        }
        stop.stop()
        done.wait()
        _ = handlers

        let reader = try StateReader(directory: config.stateDirectory)
        guard let now = try reader.clock() else { return }
        say("\n== features of a few users as of now = \(now)")
        for id in ["\(options.userPrefix)0", "\(options.userPrefix)1", "\(options.userPrefix)2"] {
            let first = FeatureExport.firstDay(now: now, calendar: config.calendar, windows: FeatureExport.defaultWindows)
            if let user = try reader.user(id, daysFrom: first) {
                say(FeatureExport.json(user, now: now, calendar: config.calendar, windows: FeatureExport.defaultWindows))
            }
        }
        say("\n== a few dead letters from segmenter-dlq")
        for letter in try readTopic("segmenter-dlq", bootstrap: bootstrap, limit: 3) { say(letter) }
        producer = nil  // clients go before the broker they talk to
        defer { withExtendedLifetime(broker) {} }
        say("\nTry: segmenter export features --config <a config whose state_dir is \(config.stateDirectory.path)>")
    }

    private func readTopic(_ topic: String, bootstrap: String, limit: Int) throws -> [String] {
        let reader = TopicReader()
        let consumer = try KafkaConsumer(configuration: KafkaConfiguration([
            "bootstrap.servers": bootstrap, "group.id": "demo-reader-\(getpid())"]), listener: reader)
        try consumer.subscribe(to: [topic])
        var lines: [String] = []
        let deadline = Date().addingTimeInterval(10)
        while lines.count < limit, Date() < deadline {
            for message in try consumer.poll(maxMessages: limit - lines.count, timeoutMs: 200).messages {
                lines.append(String(decoding: message.payload, as: UTF8.self))
            }
        }
        return lines
    }
}

/// Starts every partition from the beginning; for reading output topics.
final class TopicReader: RebalanceListener, @unchecked Sendable {
    func partitionsAssigned(_ partitions: [TopicPartition]) -> [TopicPartition: StartOffset] {
        Dictionary(uniqueKeysWithValues: partitions.map { ($0, StartOffset.beginning) })
    }
    func partitionsRevoked(_ partitions: [TopicPartition]) {}
}
