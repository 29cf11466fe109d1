import Foundation
import KafkaIO
import SegmenterCore
import Testing

/// One end-to-end scenario: a `segmenter dev-broker` process, a work directory, and helpers
/// to generate input, run `segmenter run` (killing it on purpose), and read topics with kcat.
final class Harness: @unchecked Sendable {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)")
    let bin = Processes.segmenterPath
    let kcat: String
    let bootstrap: String
    private let broker: Processes.Running?
    /// Set when the broker runs in this process, so a test can take it down and up again.
    let cluster: MockCluster?

    /// The input topics' partition count.
    let partitions: Int

    /// - Parameter inProcess: host librdkafka's mock cluster here instead of a `dev-broker` process.
    init(inProcess: Bool = false, partitions: Int = 4) throws {
        self.partitions = partitions
        kcat = try #require(Processes.which("kcat"), "kcat is needed to read topics independently (scripts/test installs it)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        if inProcess {
            let cluster = try MockCluster(brokers: 1)
            for topic in ["activity", "billing", "segmenter-dlq"] { try cluster.createTopic(topic, partitions: Int32(partitions)) }
            self.cluster = cluster
            bootstrap = cluster.bootstrapServers
            broker = nil
            return
        }
        cluster = nil
        let port = Processes.freePort()
        bootstrap = "127.0.0.1:\(port)"
        if let noida = Self.noidaDB {
            broker = try Self.startNoidaDB(noida, port: port, work: work, partitions: partitions)
            return
        }
        let broker = try Processes.Running(bin, ["dev-broker", "--port", "\(port)", "--partitions", "\(partitions)"],
                                           log: work.appendingPathComponent("broker.log"))
        let deadline = Date().addingTimeInterval(10)
        while !broker.output.contains("bootstrap.servers"), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        try #require(broker.output.contains("bootstrap.servers"), "dev-broker did not start: \(broker.output)")
        self.broker = broker
    }

    /// noida-db's binary (the one inside the wheel, not the Python wrapper, which leaves it
    /// running when killed) when scripts/test runs the suite against it (`SEGMENTER_TEST_NOIDA_DB`):
    /// a Kafka implementation that shares no code with librdkafka, so a protocol bug cannot
    /// hide on both sides as it can with the mock.
    static let noidaDB = ProcessInfo.processInfo.environment["SEGMENTER_TEST_NOIDA_DB"].flatMap { $0.isEmpty ? nil : $0 }

    /// The broker these tests run against, for messages.
    static var brokerName: String { noidaDB == nil ? "librdkafka's mock cluster" : "noida-db" }

    /// Starts noida-db's Kafka service alone on `port` and creates the input and output topics
    /// with `partitions` partitions (internal ones are auto-created, as on the mock).
    private static func startNoidaDB(_ path: String, port: UInt16, work: URL, partitions: Int) throws -> Processes.Running {
        let broker = try Processes.Running(path, ["start", "--data-dir", work.appendingPathComponent("noida").path,
                                                  "--only", "kafka", "--kafka-port", "\(port)"],
                                           log: work.appendingPathComponent("broker.log"))
        let deadline = Date().addingTimeInterval(10)
        while !broker.output.contains("127.0.0.1:\(port)"), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        try #require(broker.output.contains("127.0.0.1:\(port)"), "noida-db did not start: \(broker.output)")
        let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": "127.0.0.1:\(port)"]))
        // The outputs too: a test reads an alert topic nothing was published to, which the mock
        // creates on the metadata request and noida-db does not.
        try KafkaAdmin.createTopics(using: producer, names: ["activity", "billing", "segmenter-dlq", "segment-membership",
                                                             "segment-kpi-deltas", "segment-alerts"], partitions: Int32(partitions))
        return broker
    }

    /// noida-db ignores SIGTERM (its data directory is this test's own, so nothing is lost).
    deinit { broker?.kill(Self.noidaDB == nil ? SIGTERM : SIGKILL) }

    /// `segmenter generate` with `arguments`; returns what it says it produced.
    func generate(_ arguments: [String], log name: String = "produced.jsonl") throws -> ProducedLog {
        let log = work.appendingPathComponent(name).path
        let (status, _) = try Processes.run(bin, ["generate", "--bootstrap-servers", bootstrap, "--out", log] + arguments)
        try #require(status == 0)
        return try ProducedLog(path: log)
    }

    /// `generate` options for input in the last `days` days before today: newer than the
    /// default stream's last events minus any dedupe horizon (at least 7 days), so a second
    /// stream after a first one is new input rather than input older than the horizon.
    static func recent(days: Int) -> [String] {
        ["--days", "\(days)", "--start", DayCalendar.isoDate(DayNumber(Int64(Date().timeIntervalSince1970) / 86_400) - DayNumber(days))]
    }

    /// A config for this broker with a fresh group; `extra` is appended YAML (segments, KPIs).
    /// - Parameters:
    ///   - instance: names a second (third…) instance: its own config file and state directory.
    ///   - group: the consumer group, to put several instances in one.
    ///   - staticMembership: joins with a `group.instance.id` (KIP-345) named after the group
    ///     and the instance. On by default on noida-db, which never expires a member that stopped
    ///     heartbeating: there a restart must reclaim its membership (see README, Kafka).
    func writeConfig(batch: Int, extra: String = "", instance: String? = nil, group: String? = nil,
                     staticMembership: Bool = Harness.noidaDB != nil) throws -> String {
        let suffix = instance.map { "-\($0)" } ?? ""
        let path = work.appendingPathComponent("segmenter\(suffix).yaml").path
        let group = group ?? "e2e-\(UUID().uuidString)"
        try """
        kafka:
          bootstrap.servers: \(bootstrap)
          group.id: \(group)
        \(staticMembership ? "  group.instance.id: \(group)-\(instance ?? "solo")" : "")
        state_dir: \(work.appendingPathComponent("state\(suffix)").path)
        fx:
          EUR: 1.08
        ingest:
          batch_max_events: \(batch)
          batch_max_wait_ms: 50
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Adds `line` (a `key: value`) to the config's `kafka:` section.
    func appendKafkaProperty(config: String, _ line: String) throws {
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: "kafka:\n", with: "kafka:\n  \(line)\n").write(toFile: config, atomically: true, encoding: .utf8)
    }

    /// Waits (bounded) until every partition pair's watermark is its latest event: both inputs
    /// read to their end long enough to stop holding it back (SPEC §3), and no event waits for
    /// it any more, so the state is final.
    func waitUntilPairsSettle(config: String, timeout: Double = 30) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let (status, text) = try? Processes.run(bin, ["inspect", "state", "--no-lag", "--config", config], timeout: 10), status == 0 else { return }
            let settled = text.split(separator: "\n").filter { $0.hasPrefix("partition ") }.allSatisfy { line in
                let fields = line.split(separator: ";")
                let instants = { (text: Substring) in
                    text.split(whereSeparator: { $0 == " " || $0 == "," }).compactMap { try? RFC3339.parse(String($0)).get() }
                }
                let watermark = instants(fields[0]).first
                let latest = fields.first { $0.contains("latest event") }.map(instants)?.max()
                return watermark == latest && !line.contains("waiting for the watermark")
            }
            if settled { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    /// Sum of stored next offsets over every input partition, read while `run` runs.
    func committedOffsets(config: String) -> Int {
        guard let (status, text) = try? Processes.run(bin, ["inspect", "state", "--no-lag", "--config", config], timeout: 10), status == 0 else { return 0 }
        return text.split(separator: "\n").compactMap { line in
            line.hasPrefix("offset ") ? line.split(separator: "=").last.flatMap { Int($0) } : nil
        }.reduce(0, +)
    }

    /// Runs `segmenter run`, SIGKILLs it once a fifth of `total` is committed, restarts it, lets
    /// it consume everything and stops it gracefully. Returns the offsets committed at the kill.
    /// - Parameter afterCatchingUp: produces more input once everything else is consumed and
    ///   returns how many messages it sent (for example a late clock tick).
    @discardableResult
    func runKilledMidStream(config: String, total: Int, signal: Int32 = SIGKILL,
                            afterCatchingUp: (() throws -> Int)? = nil) throws -> Int {
        let first = try Processes.Running(bin, ["run", "--config", config], log: work.appendingPathComponent("run1.log"))
        let deadline = Date().addingTimeInterval(120)
        while committedOffsets(config: config) < total / 5, Date() < deadline, first.process.isRunning {
            Thread.sleep(forTimeInterval: 0.05)
        }
        first.kill(signal)
        let status = first.wait(seconds: 30)
        if signal != SIGKILL { #expect(status == 0, "a graceful stop exits 0: \(first.output.suffix(1500))") }
        let atKill = committedOffsets(config: config)
        #expect(atKill > 0 && atKill < total, "kill should land mid-stream (committed \(atKill) of \(total)); run log: \(first.output.suffix(2000))")

        try runToCompletion(config: config, total: total, afterCatchingUp: afterCatchingUp)
        return atKill
    }

    /// Runs `segmenter run` until `total` (plus whatever `afterCatchingUp` adds) is committed,
    /// then stops it with SIGTERM and expects a clean exit.
    func runToCompletion(config: String, total: Int, afterCatchingUp: (() throws -> Int)? = nil) throws {
        let second = try Processes.Running(bin, ["run", "--config", config], log: work.appendingPathComponent("run-\(UUID().uuidString).log"))
        try finish(second, config: config, total: total, afterCatchingUp: afterCatchingUp)
    }

    /// Lets a started `segmenter run` consume `total` (plus what `afterCatchingUp` adds), then
    /// stops it with SIGTERM and expects a clean exit.
    func finish(_ second: Processes.Running, config: String, total: Int, afterCatchingUp: (() throws -> Int)? = nil) throws {
        let deadline2 = Date().addingTimeInterval(180)
        // Consumed already or not, it relays what the outbox holds once it owns partitions.
        while !second.output.contains("assigned"), Date() < deadline2, second.process.isRunning { Thread.sleep(forTimeInterval: 0.1) }
        while committedOffsets(config: config) < total, Date() < deadline2, second.process.isRunning {
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(committedOffsets(config: config) == total, "second run log: \(second.output.suffix(2000))")
        if let more = try afterCatchingUp?() {
            let deadline3 = Date().addingTimeInterval(60)
            while committedOffsets(config: config) < total + more, Date() < deadline3 { Thread.sleep(forTimeInterval: 0.2) }
            #expect(committedOffsets(config: config) == total + more)
        }
        waitUntilPairsSettle(config: config)
        // A graceful stop emits the KPIs once more and drains the outbox before it exits.
        second.kill(SIGTERM)
        #expect(second.wait(seconds: 30) == 0, "graceful stop failed: \(second.output.suffix(2000))")
    }

    /// Every valid produced event counted exactly once (lifetime spend and activity count per
    /// user, from `export features`), and every invalid one in the DLQ.
    func expectExactlyOnce(config: String, produced: ProducedLog) throws {
        var actual: [String: (spend: Int64, activities: Int)] = [:]
        for object in try export(config: config, windows: [3650]) {
            // Two decimals in the JSON; rounding the double back to cents is exact at these magnitudes.
            let cents = Int64(((object["lifetime_spend"] as! NSNumber).doubleValue * 100).rounded())
            actual[object["user_id"] as! String] = (cents, (object["activities(3650d)"] as! NSNumber).intValue)
        }
        let expected = produced.expectedTotals
        #expect(actual.count == expected.count)
        var mismatches: [String] = []
        for (user, totals) in expected where actual[user]?.spend != totals.spend || actual[user]?.activities != totals.activities {
            mismatches.append("\(user): expected \(totals), got \(String(describing: actual[user]))")
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")

        // At least once on the topic; exactly once by source coordinates.
        var byCoordinates: [String: String] = [:]
        for object in try readTopic("segmenter-dlq") {
            #expect(!(object["error"] as! String).isEmpty)
            byCoordinates["\(object["source_topic"]!)/\(object["partition"]!)/\(object["offset"]!)"] = object["payload"] as? String
        }
        #expect(byCoordinates.values.sorted() == produced.invalidPayloads.sorted())
    }

    /// Every message of `topic` as parsed JSON objects, in partition order (kcat, not segmenter).
    /// A topic nothing was produced to yet is created by the mock on kcat's first metadata
    /// request, and that first read can fail while it is created: read again, a few times.
    func readTopic(_ topic: String) throws -> [[String: Any]] {
        try readRaw(topic).map { try JSONSerialization.jsonObject(with: Data($0.payload.utf8)) as! [String: Any] }
    }

    struct RawMessage {
        let partition: Int32
        let offset: Int64
        /// The message's timestamp (ms): when it was produced.
        let timestamp: Int64
        let payload: String
    }

    /// Every message of `topic` with its coordinates, in partition order (kcat, not segmenter).
    /// A topic nothing was produced to yet is created by the mock on kcat's first metadata
    /// request, and that first read can fail while it is created: read again, a few times.
    func readRaw(_ topic: String) throws -> [RawMessage] {
        let arguments = ["-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-f", "%p %o %T %s\\n"]
        var (status, text) = try Processes.run(kcat, arguments)
        for _ in 0..<3 where status != 0 {
            Thread.sleep(forTimeInterval: 0.5)
            (status, text) = try Processes.run(kcat, arguments)
        }
        try #require(status == 0, "kcat could not read \(topic)")
        return text.split(separator: "\n", omittingEmptySubsequences: true).compactMap { line in
            let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, let partition = Int32(parts[0]), let offset = Int64(parts[1]), let time = Int64(parts[2]) else { return nil }
            return RawMessage(partition: partition, offset: offset, timestamp: time, payload: String(parts[3]))
        }
    }

    /// A key the producers' default partitioner (kcat's, `generate`'s) sends to `partition`.
    func key(hashingTo partition: Int32, prefix: String) -> String {
        (0...).lazy.map { "\(prefix)\($0)" }.first { Partitioner.consistentRandom.partition(of: $0, count: self.partitions) == partition }!
    }

    /// Produces one keyed message with kcat (to `partition`, or where the key hashes to).
    func produce(topic: String, key: String, payload: String, partition: Int? = nil) throws {
        try produce(topic: topic, messages: [(key, payload)], partition: partition)
    }

    /// Produces keyed messages with kcat, in order.
    func produce(topic: String, messages: [(key: String, payload: String)], partition: Int? = nil) throws {
        let file = work.appendingPathComponent("produce-\(UUID().uuidString).txt")
        try messages.map { "\($0.key)\t\($0.payload)\n" }.joined().write(to: file, atomically: true, encoding: .utf8)
        let target = partition.map { ["-p", "\($0)"] } ?? []
        var (status, errors) = try Processes.run(kcat, ["-b", bootstrap, "-P", "-t", topic, "-K", "\t", "-l", file.path] + target, stderr: true)
        // A failure was seen once under CI load: one retry, once the broker answers for the topic
        // again. A retry after a partial delivery sends some messages twice: the state dedupes
        // them by event id, and a test that counts offsets would say so.
        if status != 0 {
            waitUntil(timeout: 30) { (try? Processes.run(kcat, ["-b", bootstrap, "-L", "-t", topic], timeout: 10).0) == 0 }
            (status, errors) = try Processes.run(kcat, ["-b", bootstrap, "-P", "-t", topic, "-K", "\t", "-l", file.path] + target, stderr: true)
        }
        try #require(status == 0, "kcat could not produce to \(topic): \(errors.suffix(600))")
    }

    func export(config: String, windows: [Int]) throws -> [[String: Any]] {
        let (status, text) = try Processes.run(bin, ["export", "features", "--config", config] + windows.flatMap { ["--window", "\($0)"] })
        try #require(status == 0)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }
}
