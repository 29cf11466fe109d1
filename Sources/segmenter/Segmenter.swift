import ArgumentParser

@main
struct Segmenter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segmenter",
        abstract: "Streaming user segmentation: Kafka events in, per-user state in SQLite, segment changes and KPIs out.",
        subcommands: [Run.self, Demo.self, DevBroker.self, Generate.self, Inspect.self, Export.self, Validate.self, BenchConsume.self, BenchLatency.self, BenchRollover.self]
    )
}
