import Foundation
import Testing

/// The broker goes down mid-stream and comes back: `run` rides it out, and nothing is lost or
/// counted twice. The broker is librdkafka's mock cluster hosted in this test process, so the
/// test can take it down (`rd_kafka_mock_broker_set_down`) while `run` is a separate process.
@Suite(.serialized) struct BrokerOutageTests {
    @Test func aBrokerOutageMidStreamLosesAndDuplicatesNothing() throws {
        let harness = try Harness(inProcess: true)
        let cluster = try #require(harness.cluster)
        // Given a run that has consumed a first stream
        let first = try harness.generate(["--users", "200", "--events", "10000", "--invalid-rate", "0.01",
                                          "--duplicate-rate", "0.02", "--seed", "9", "--user-prefix", "a"], log: "first.jsonl")
        let config = try harness.writeConfig(batch: 300)
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        let started = Date().addingTimeInterval(120)
        while harness.committedOffsets(config: config) < first.total, Date() < started { Thread.sleep(forTimeInterval: 0.1) }

        // When the broker goes down, a second stream is produced meanwhile (it waits in the
        // producer), and the broker comes back once `run` has lost it and the stream is waiting
        let logBefore = run.output.count
        cluster.setBroker(1, up: false)
        let secondDone = StopFlag()
        nonisolated(unsafe) var second: ProducedLog?
        Thread.detachNewThread {
            second = try? harness.generate(["--users", "200", "--events", "10000", "--invalid-rate", "0.01",
                                            "--duplicate-rate", "0.02", "--seed", "10", "--user-prefix", "b"] + Harness.recent(days: 6),
                                           log: "second.jsonl")
            secondDone.set()
        }
        let secondLog = harness.work.appendingPathComponent("second.jsonl").path
        let noticed = waitUntil(timeout: 30) {
            FileManager.default.fileExists(atPath: secondLog) && run.output.dropFirst(logBefore).contains("rdkafka#")
        }
        #expect(noticed, "run should log that it lost the broker: \(run.output.suffix(1500))")
        let duringOutage = harness.committedOffsets(config: config)
        #expect(run.process.isRunning, "run must survive an unreachable broker: \(run.output.suffix(1500))")
        cluster.setBroker(1, up: true)
        try #require(secondDone.wait(seconds: 90), "the second stream was never produced")
        let produced = first + (try #require(second))

        let deadline = Date().addingTimeInterval(120)
        while harness.committedOffsets(config: config) < produced.total, Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        #expect(duringOutage < produced.total, "the outage should land mid-stream")
        #expect(harness.committedOffsets(config: config) == produced.total, "\(run.output.suffix(1500))")
        harness.waitUntilPairsSettle(config: config)  // events ahead of a pair's watermark count once it reaches them
        run.kill(SIGTERM)  // a graceful stop emits once more and drains the outbox
        #expect(run.wait(seconds: 30) == 0)
        try harness.expectExactlyOnce(config: config, produced: produced)
    }
}

/// No broker at the configured address: `run` stops at start-up, names the address and says why,
/// rather than waiting for topics that can never arrive (KafkaError.Kind.brokerUnreachable).
@Suite struct UnreachableBrokerTests {
    @Test func runWithNoBrokerAtTheAddressExitsNamingIt() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("unreachable-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let port = Processes.freePort()  // nothing listens there
        let config = work.appendingPathComponent("segmenter.yaml").path
        try "kafka:\n  bootstrap.servers: 127.0.0.1:\(port)\nstate_dir: \(work.path)/state\n".write(toFile: config, atomically: true, encoding: .utf8)
        let (status, output) = try Processes.run(Processes.segmenterPath, ["run", "--config", config], timeout: 60, stderr: true)
        #expect(status != 0)
        #expect(output.contains("cannot reach Kafka at 127.0.0.1:\(port)"), "\(output.suffix(800))")
    }
}

/// A one-shot flag a background thread sets.
final class StopFlag: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func set() { semaphore.signal() }
    func wait(seconds: Double) -> Bool { semaphore.wait(timeout: .now() + seconds) == .success }
}
