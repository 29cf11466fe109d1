import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KafkaIO
import Testing

/// Input deleted before it was consumed (issue 25, item 7; SPEC §7): retention runs ahead of a
/// stopped service. With `offset_reset: earliest` (the default) the service continues from the
/// oldest input Kafka holds and the skipped range is counted, logged with partition and range,
/// and shown by `inspect state`, `/api/ingest` and `/metrics`; with `none` it stops and says why,
/// committing nothing past what it had.
@Suite(.serialized) struct SkippedOffsetsTests {
    static let token = "skipped-offsets-\(UUID().uuidString.prefix(8))"

    /// Needs a broker with DeleteRecords (what retention does): noida-db, in scripts/test's
    /// second pass. librdkafka's mock cluster answers it "not supported".
    @Test(.enabled(if: Harness.noidaDB != nil, "the mock cluster has no DeleteRecords"))
    func inputDeletedBeforeItWasConsumedIsCountedAndShownNeverSilent() async throws {
        let harness = try Harness()
        setenv("E2E_SKIP_TOKEN", Self.token, 1)
        let port = Processes.freePort()
        let config = try harness.writeConfig(batch: 200, extra: """
            segments:
              - {name: spenders, rule: "spend(30d) > 50"}
            http:
              port: \(port)
              auth_token: ${E2E_SKIP_TOKEN}
            """)
        // Given input consumed up to its end, then the service stopped
        let first = try harness.generate(Harness.recent(days: 5) + ["--users", "40", "--events", "800", "--seed", "61"], log: "first.jsonl")
        try harness.runToCompletion(config: config, total: first.total)

        // When more input arrives while it is down, and retention deletes 25 unconsumed messages of activity[0]
        let second = try harness.generate(Harness.recent(days: 5) + ["--users", "40", "--events", "800", "--seed", "62"], log: "second.jsonl")
        let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": harness.bootstrap]))
        let tp = TopicPartition(topic: "activity", partition: 0)
        let (low, high) = try producer.watermarks(of: tp)
        let stored = try #require(try Self.storedNext(harness, config, tp))
        try #require(high - stored > 25, "activity[0] got new input: \(stored)..<\(high)")
        let lows = try producer.deleteRecords(before: [tp: stored + 25])
        #expect(lows[tp] == stored + 25 && low <= stored)

        // Then the restarted service skips exactly those, says so, and consumes the rest
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run-after.log"))
        defer { run.kill(SIGKILL) }
        let total = first.total + second.total
        let deadline = Date().addingTimeInterval(120)
        while harness.committedOffsets(config: config) < total, Date() < deadline, run.process.isRunning { try await Task.sleep(for: .milliseconds(200)) }
        #expect(harness.committedOffsets(config: config) == total, "\(run.output.suffix(1500))")
        #expect(run.output.contains("activity[0]: offsets \(stored)..<\(stored + 25) (25 messages) were no longer in Kafka"), "\(run.output.suffix(1500))")

        let (_, state) = try Processes.run(harness.bin, ["inspect", "state", "--no-lag", "--config", config])
        #expect(state.contains("skipped activity[0]: 25 offsets no longer in Kafka when due; last \(stored)..<\(stored + 25)"), "\(state)")
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/api/ingest")!)
        request.setValue("Bearer \(Self.token)", forHTTPHeaderField: "Authorization")
        let (data, _) = try await URLSession.shared.data(for: request)
        let ingest = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((ingest["skipped_offsets"] as? [String: Any])?["activity/0"] as? Int == 25, "\(ingest)")
        let (metricsData, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        let metrics = String(decoding: metricsData, as: UTF8.self)
        #expect(metrics.contains("segmenter_input_offsets_skipped_total{topic=\"activity\",partition=\"0\"} 25")
                || metrics.contains("segmenter_input_offsets_skipped_total{partition=\"0\",topic=\"activity\"} 25"),
                "\(metrics.split(separator: "\n").filter { $0.contains("skipped") })")
        run.kill(SIGTERM)
        #expect(run.wait(seconds: 30) == 0)

        // And with offset_reset: none, the next deletion stops it, naming the partition and range
        let third = try harness.generate(Harness.recent(days: 5) + ["--users", "40", "--events", "400", "--seed", "63"], log: "third.jsonl")
        let before = try #require(try Self.storedNext(harness, config, tp))
        _ = try producer.deleteRecords(before: [tp: before + 10])
        let strict = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "ingest:\n", with: "ingest:\n  offset_reset: none\n")
        try strict.write(toFile: config, atomically: true, encoding: .utf8)
        let stopped = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run-none.log"))
        defer { stopped.kill(SIGKILL) }
        let status = stopped.wait(seconds: 90)
        #expect(status != 0 && stopped.output.contains("activity[0]: the next offset to consume, \(before), is no longer in Kafka"),
                "\(String(describing: status)): \(stopped.output.suffix(1500))")
        #expect(try Self.storedNext(harness, config, tp) == before, "nothing of activity[0] committed past what it had")
        _ = third
    }

    /// The same while the service runs: retention overtakes a consumer that fell behind (here
    /// frozen with SIGSTOP while more input arrives and its oldest part is deleted), so its next
    /// fetch is out of range mid-stream. The service resumes from the oldest input Kafka holds and
    /// counts what it skipped, as at start-up.
    @Test(.enabled(if: Harness.noidaDB != nil, "the mock cluster has no DeleteRecords"))
    func inputDeletedUnderARunningConsumerIsCountedAndTheRestConsumed() async throws {
        let harness = try Harness()
        let config = try harness.writeConfig(batch: 200, extra: "segments:\n  - {name: spenders, rule: \"spend(30d) > 50\"}")
        // A long session, so the frozen member keeps its partitions: the fetch, not a new
        // assignment, finds its offset gone.
        try harness.appendKafkaProperty(config: config, "session.timeout.ms: \"45000\"")
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        let first = try harness.generate(Harness.recent(days: 5) + ["--users", "40", "--events", "600", "--seed", "71"], log: "first.jsonl")
        let consumed = Date().addingTimeInterval(90)
        while harness.committedOffsets(config: config) < first.total, Date() < consumed { try await Task.sleep(for: .milliseconds(200)) }
        try #require(harness.committedOffsets(config: config) == first.total, "\(run.output.suffix(1500))")
        let tp = TopicPartition(topic: "activity", partition: 0)
        let stored = try #require(try Self.storedNext(harness, config, tp))

        // When the running consumer is frozen while input arrives and 20 unconsumed messages of activity[0] are deleted
        run.kill(SIGSTOP)
        let second = try harness.generate(Harness.recent(days: 5) + ["--users", "40", "--events", "600", "--seed", "72"], log: "second.jsonl")
        let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": harness.bootstrap]))
        let high = try producer.watermarks(of: tp).high
        try #require(high - stored > 20, "activity[0] got new input: \(stored)..<\(high)")
        _ = try producer.deleteRecords(before: [tp: stored + 20])
        run.kill(SIGCONT)

        // Then it skips exactly those, says so, and consumes the rest without a restart
        let total = first.total + second.total
        let deadline = Date().addingTimeInterval(120)
        while harness.committedOffsets(config: config) < total, Date() < deadline, run.process.isRunning { try await Task.sleep(for: .milliseconds(200)) }
        #expect(harness.committedOffsets(config: config) == total, "the skipped 20 count as consumed: \(run.output.suffix(1500))")
        #expect(run.output.contains("activity[0]: offsets \(stored)..<\(stored + 20) (20 messages) were no longer in Kafka"), "\(run.output.suffix(1500))")
        #expect(run.process.isRunning, "it keeps running")
        let (_, state) = try Processes.run(harness.bin, ["inspect", "state", "--no-lag", "--config", config])
        #expect(state.contains("skipped activity[0]: 20 offsets no longer in Kafka when due"), "\(state)")
    }

    /// The stored next offset of `tp` (from `inspect state`).
    static func storedNext(_ harness: Harness, _ config: String, _ tp: TopicPartition) throws -> Int64? {
        let (_, text) = try Processes.run(harness.bin, ["inspect", "state", "--no-lag", "--config", config])
        let prefix = "offset \(tp.topic)[\(tp.partition)] next="
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int64($0.dropFirst(prefix.count)) }
    }
}
