import Foundation
import Testing
import SegmenterCore

/// `segmenter rebuild` after a rule change that reads 30 days of history: the state is
/// re-derived from the input and only the net differences are published (cause `rebuild`),
/// so the topics folded before and after equal a recomputation under the new rules.
@Suite(.serialized) struct RebuildTests {
    static func yaml(window: Int) -> String {
        """
        segments:
          - name: big_spenders
            rule: spend(\(window)d) > 400
          - name: quiet
            rule: activities(\(window)d) < 12
        kpis:
          - name: spend
            sum: spend(\(window)d)
        kpi_emit_interval: 200ms
        """
    }

    @Test func aRebuildAfterARuleReadingThirtyDaysPublishesExactlyTheDifference() throws {
        let harness = try Harness()
        let produced = try harness.generate(["--users", "300", "--events", "15000", "--invalid-rate", "0.01", "--seed", "31"]
                                            + Harness.recent(days: 40))
        let valid = produced.lines.filter { $0.valid && !$0.duplicate }
        let group = "rebuild-\(UUID().uuidString)"

        // Given everything consumed under rules that read 7 days
        var config = try harness.writeConfig(batch: 500, extra: Self.yaml(window: 7), group: group)
        try harness.runToCompletion(config: config, total: produced.total)
        let before = try harness.readTopic("segment-membership")
        let published = try Recomputation(yaml: Self.yaml(window: 7), input: valid)
        published.expectFoldedMembership(before)
        let kpisBefore = try harness.readTopic("segment-kpi-deltas")
        let deadLettersBefore = try harness.readTopic("segmenter-dlq").count

        // When the rules change to read 30 days and the state is rebuilt from the input
        config = try harness.writeConfig(batch: 500, extra: Self.yaml(window: 30), group: group)
        let (status, output) = try Processes.run(harness.bin, ["rebuild", "--config", config, "--from-earliest"])
        try #require(status == 0, "rebuild failed: \(output)")

        // Then the topics folded before and after equal a recomputation under the new rules
        let after = try harness.readTopic("segment-membership")
        let truth = try Recomputation(yaml: Self.yaml(window: 30), input: valid)
        truth.expectFoldedMembership(after)
        truth.expectKPIChains(try harness.readTopic("segment-kpi-deltas"))

        // And what the rebuild published is exactly the difference, once each, cause rebuild
        let changes = Self.added(to: before, in: after).map { "\($0["user_id"]!)/\($0["segment"]!) \($0["change"]!) by \($0["cause"]!)" }
        let expected = truth.expectedMembers.subtracting(published.expectedMembers).map { "\($0) enter by rebuild" }
            + published.expectedMembers.subtracting(truth.expectedMembers).map { "\($0) exit by rebuild" }
        #expect(changes.sorted() == expected.sorted(), "published \(changes.count), expected \(expected.count)")
        #expect(expected.contains { $0.hasSuffix("enter by rebuild") } && expected.contains { $0.hasSuffix("exit by rebuild") },
                "the scenario should move users both ways")
        let kpiMessages = Self.added(to: kpisBefore, in: try harness.readTopic("segment-kpi-deltas"))
        #expect(!kpiMessages.isEmpty && kpiMessages.allSatisfy { $0["cause"] as? String == "rebuild" }, "\(kpiMessages)")
        #expect(try harness.readTopic("segmenter-dlq").count == deadLettersBefore, "a rebuild dead-letters nothing again")
        #expect(output.contains("big_spenders:") && output.contains("quiet:"), "\(output)")

        // And a second rebuild finds nothing to publish; and an instance that starts from an
        // empty state directory restores the rebuilt partitions from Kafka and publishes nothing
        let (again, _) = try Processes.run(harness.bin, ["rebuild", "--config", config])
        #expect(again == 0)
        try FileManager.default.removeItem(at: harness.work.appendingPathComponent("state"))
        try harness.runToCompletion(config: config, total: produced.total)
        #expect(try harness.readTopic("segment-membership").count == after.count)
        truth.expectFoldedMembership(try harness.readTopic("segment-membership"))
    }

    /// The messages of `after` that `before` did not hold (topics are read in partition order,
    /// so new messages of one partition come before old ones of the next).
    static func added(to before: [[String: Any]], in after: [[String: Any]]) -> [[String: Any]] {
        func text(_ message: [String: Any]) -> String {
            String(decoding: try! JSONSerialization.data(withJSONObject: message, options: .sortedKeys), as: UTF8.self)
        }
        var seen: [String: Int] = [:]
        for message in before { seen[text(message), default: 0] += 1 }
        return after.filter { message in
            let key = text(message)
            guard let count = seen[key], count > 0 else { return true }
            seen[key] = count - 1
            return false
        }
    }

    @Test func rebuildRefusesWhileTheServiceRuns() throws {
        let harness = try Harness()
        let config = try harness.writeConfig(batch: 100)
        let running = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        let deadline = Date().addingTimeInterval(30)
        while !running.output.contains("consuming"), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let log = harness.work.appendingPathComponent("rebuild.log")
        let rebuild = try Processes.Running(harness.bin, ["rebuild", "--config", config], log: log)
        #expect(rebuild.wait(seconds: 30) != 0)
        #expect(rebuild.output.contains("is locked"), "\(rebuild.output)")
        running.kill(SIGTERM)
        _ = running.wait(seconds: 30)
    }
}
