import ArgumentParser
import Foundation
import SegmenterCore
import SegmenterService
import SegmenterStore
import HTTP

/// `segmenter explain USER`: why a user is in each segment (every sub-expression of its rule with
/// its value), and what time alone changes next — read-only, beside a running `run`.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Why a user is (or is not) in each segment, and their next change by time.",
        discussion: """
            Evaluates the user's rules on the live state (read-only) at their partition pair's watermark: every \
            sub-expression with its value (true / false / null, and why null), the features the rules read, and the \
            next instant at which time alone changes something for them, with its cause and the memberships it changes.
            """)
    @OptionGroup var options: ConfigOption
    @Argument(help: "The user id.") var user: String
    @Option(help: "Only this segment.") var segment: String?
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        let config = try options.load()
        if let segment, !config.catalog.segmentNames.contains(segment) {
            throw ValidationError("unknown segment \(segment); the config has \(config.catalog.segmentNames.joined(separator: ", "))")
        }
        let reader = try StateReader(directory: config.stateDirectory)
        guard let explanation = try UserExplainer.explain(user, segment: segment, config: config, reader: reader) else {
            throw ValidationError("user \(user) not found in \(config.stateDirectory.path)")
        }
        say(json ? try explanation.json() : explanation.lines(calendar: config.calendar).joined(separator: "\n"))
    }
}
