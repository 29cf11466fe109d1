import ArgumentParser
import Foundation
import SegmenterCore
import SegmenterService
import ServiceConfig

/// `segmenter preview --config NEW.yaml [--against CURRENT.yaml]`: what a config change would
/// do, before it ships.
struct Preview: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What a changed config would do to the live state: who enters and exits, KPIs now and after.",
        discussion: """
            Reads the state directory read-only (beside a running `run`) and evaluates every user under NEW's rules \
            at their partition pair's watermark, against the memberships last published for them: exactly the \
            changes `run` publishes (cause `config`) when it starts with NEW on that state. Writes nothing.
            With several instances, each previews the partitions in its own state directory.
            """)
    @Option(name: .shortAndLong, help: "The new configuration (its rules and KPIs are previewed).") var config: String
    @Option(help: "The running configuration (its state directory and KPI definitions); default: the new one's state directory.")
    var against: String?
    @Flag(help: "JSON instead of text (for CI pipelines).") var json = false
    @Option(help: "Exit with status 3 when more than this many memberships would end (gate rule changes in review).")
    var failIfExitsOver: Int?
    @Option(help: "Users named per segment and direction.") var sample = 5

    func run() throws {
        let new = try SegmenterConfig.load(path: config)
        let current = try against.map { try SegmenterConfig.load(path: $0) } ?? new
        let result = try ConfigPreviewRunner.run(new: new, current: current, sampleSize: sample)
        say(json ? result.json : result.lines(current: current.catalog).joined(separator: "\n"))
        if let limit = failIfExitsOver, result.preview.exits > limit {
            FileHandle.standardError.write(Data("preview: \(result.preview.exits) memberships would end, more than --fail-if-exits-over \(limit)\n".utf8))
            throw ExitCode(3)
        }
    }
}
