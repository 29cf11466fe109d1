import ArgumentParser
import Foundation
import SegmenterCore
import SegmenterService
import SegmenterStore
import Reconciliation

/// `segmenter rebuild`: the state re-derived from the input in place, published as a correction.
struct Rebuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-derive the state from the input and publish only what changed (cause rebuild).",
        discussion: """
        For after a fix to a rule that reads history, a longer window, or a state you no longer trust. \
        Stop `segmenter run` first (the state directory is locked while it runs). Every partition pair \
        of the input is replayed into a scratch database beside the state, from the earliest message \
        Kafka still holds (--from-earliest, the default) or from the first message at or after \
        --from TIME, up to where the input ends when the rebuild starts, with the config's current \
        rules. Each partition's rebuilt state then replaces the old one in one transaction, and every \
        user is compared with what was last published for them: only the differences go out, as \
        membership enter/exit and KPI deltas with cause `rebuild`. Downstream sees a correction, not \
        every membership announced again. Undelivered outbox messages are kept and sent.

        With --from, users whose events all came before TIME are not in the rebuilt state: their \
        memberships end. Warehouse corrections are not input: run `reconcile --once` after a rebuild.

        Several instances: stop them all and rebuild on one; its directory then holds every partition, \
        and each is snapshotted to Kafka. Empty the others' state directories before they start: they \
        restore the rebuilt partitions from those snapshots (see the README, "Rebuilding state from the input").
        """
    )

    @OptionGroup var options: ConfigOption
    @Flag(help: "Replay from the earliest message Kafka holds (the default).") var fromEarliest = false
    @Option(help: "Replay from the first message at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).") var from: String?

    func validate() throws {
        if fromEarliest && from != nil { throw ValidationError("give --from-earliest or --from TIME, not both") }
        if let from, (try? RFC3339.parse(from).get()) == nil {
            throw ValidationError("--from must be an RFC 3339 time like 2026-11-01T00:00:00Z, not \(from)")
        }
    }

    func run() throws {
        let config = try options.load()
        let start: StateRebuilder.Start = try from.map { .time(try RFC3339.parse($0).get()) } ?? .earliest
        let report = try StateRebuilder(config: config, start: start, logger: makeLogger("rebuild")).run()
        var entered: [String: Int] = [:], exited: [String: Int] = [:], before: [String: Int] = [:], after: [String: Int] = [:]
        for adoption in report.partitions.values {
            entered.merge(adoption.entered, uniquingKeysWith: +)
            exited.merge(adoption.exited, uniquingKeysWith: +)
            before.merge(adoption.membersBefore, uniquingKeysWith: +)
            after.merge(adoption.membersAfter, uniquingKeysWith: +)
        }
        say(String(format: "rebuilt %d partitions from %lld messages (%d events applied) in %.1f s",
                   report.partitions.count, report.replayed, report.applied, report.seconds))
        for segment in config.catalog.segmentNames where segment != SegmentCatalog.allSegment {
            say("  \(segment): \(before[segment] ?? 0) → \(after[segment] ?? 0) members (enter \(entered[segment] ?? 0), exit \(exited[segment] ?? 0))")
        }
        for (segment, count) in exited.sorted(by: { $0.key < $1.key }) where !config.catalog.segmentNames.contains(segment) {
            say("  \(segment) (no longer defined): exit \(count)")
        }
        let messages = report.partitions.values.reduce(0) { $0 + $1.messages }
        say("published \(messages) membership changes (cause rebuild) and the KPI deltas they moved"
            + (report.unpublished > 0 ? "; \(report.unpublished) messages wait in the outbox for the next `run`" : ""))
    }
}
