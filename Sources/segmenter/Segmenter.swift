import ArgumentParser

@main
struct Segmenter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segmenter",
        abstract: "Streaming user segmentation: Kafka events in, per-user state in SQLite, segment changes and KPIs out.",
        subcommands: [Run.self, Demo.self, DevBroker.self, Generate.self, Inspect.self, Explain.self, Preview.self, Export.self, Validate.self, Reconcile.self, Rebuild.self, BenchConsume.self, BenchLatency.self, BenchRollover.self, BenchSnapshots.self]
    )
}
