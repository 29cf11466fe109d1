import Foundation
import Testing

/// `segmenter dev-broker` and `segmenter run` as separate processes; `run` is SIGKILLed
/// mid-stream and restarted. Every valid event must count exactly once, every invalid one
/// must be in the dead-letter topic.
@Suite(.serialized) struct CrashRecoveryTests {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)")
    let bin = Processes.segmenterPath

    func startBroker() throws -> (Processes.Running, UInt16) {
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let port = Processes.freePort()
        let broker = try Processes.Running(bin, ["dev-broker", "--port", "\(port)", "--partitions", "4"],
                                           log: work.appendingPathComponent("broker.log"))
        let deadline = Date().addingTimeInterval(10)
        while !broker.output.contains("bootstrap.servers"), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        try #require(broker.output.contains("bootstrap.servers"), "dev-broker did not start: \(broker.output)")
        return (broker, port)
    }

    func writeConfig(port: UInt16, batch: Int) throws -> String {
        let path = work.appendingPathComponent("segmenter.yaml").path
        try """
        kafka:
          bootstrap.servers: 127.0.0.1:\(port)
          group.id: e2e-\(UUID().uuidString)
        state_dir: \(work.appendingPathComponent("state").path)
        fx:
          EUR: 1.08
        ingest:
          batch_max_events: \(batch)
          batch_max_wait_ms: 50
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Sum of stored next offsets over every input partition, read while `run` runs.
    func committedOffsets(config: String) -> Int {
        guard let (status, text) = try? Processes.run(bin, ["inspect", "state", "--config", config], timeout: 10), status == 0 else { return 0 }
        return text.split(separator: "\n").compactMap { line in
            line.hasPrefix("offset ") ? line.split(separator: "=").last.flatMap { Int($0) } : nil
        }.reduce(0, +)
    }

    @Test func sigkillMidStreamCountsEveryValidEventOnceAndDeadLettersEveryInvalidOne() throws {
        let kcat = try #require(Processes.which("kcat"), "kcat is needed to read the DLQ independently (scripts/test installs it)")
        let (broker, port) = try startBroker()
        defer { broker.kill(SIGTERM) }
        let log = work.appendingPathComponent("produced.jsonl").path
        let (generated, _) = try Processes.run(bin, ["generate", "--bootstrap-servers", "127.0.0.1:\(port)", "--users", "400",
                                                     "--events", "40000", "--invalid-rate", "0.01", "--duplicate-rate", "0.02",
                                                     "--seed", "7", "--out", log])
        try #require(generated == 0)
        let produced = try ProducedLog(path: log)
        let config = try writeConfig(port: port, batch: 250)

        // Given a run that has committed part of the stream
        let first = try Processes.Running(bin, ["run", "--config", config], log: work.appendingPathComponent("run1.log"))
        var seen = 0
        let deadline = Date().addingTimeInterval(120)
        while seen < produced.total / 5, Date() < deadline, first.process.isRunning {
            Thread.sleep(forTimeInterval: 0.05)
            seen = committedOffsets(config: config)
        }
        // When it is killed without warning, mid-stream
        first.kill(SIGKILL)
        first.wait(seconds: 10)
        let atKill = committedOffsets(config: config)
        #expect(atKill > 0 && atKill < produced.total, "kill should land mid-stream (committed \(atKill) of \(produced.total)); run log: \(first.output.suffix(2000))")

        // And restarted until it has consumed everything
        let second = try Processes.Running(bin, ["run", "--config", config], log: work.appendingPathComponent("run2.log"))
        let deadline2 = Date().addingTimeInterval(180)
        while committedOffsets(config: config) < produced.total, Date() < deadline2, second.process.isRunning {
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(committedOffsets(config: config) == produced.total, "second run log: \(second.output.suffix(2000))")
        Thread.sleep(forTimeInterval: 1)  // let the outbox relay publish
        second.kill(SIGTERM)
        #expect(second.wait(seconds: 30) == 0, "graceful stop failed: \(second.output.suffix(2000))")

        // Then every valid event counted exactly once
        let (exported, features) = try Processes.run(bin, ["export", "features", "--config", config, "--window", "3650"])
        try #require(exported == 0)
        var actual: [String: (spend: Int64, activities: Int)] = [:]
        for line in features.split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            // Two decimals in the JSON; rounding the double back to cents is exact at these magnitudes.
            let cents = Int64(((object["lifetime_spend"] as! NSNumber).doubleValue * 100).rounded())
            actual[object["user_id"] as! String] = (cents,
                                                    (object["activities(3650d)"] as! NSNumber).intValue)
        }
        let expected = produced.expectedTotals
        #expect(actual.count == expected.count)
        var mismatches: [String] = []
        for (user, totals) in expected where actual[user]?.spend != totals.spend || actual[user]?.activities != totals.activities {
            mismatches.append("\(user): expected \(totals), got \(String(describing: actual[user]))")
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")

        // And every invalid message is in the DLQ (at least once; exactly once by coordinates)
        let (read, dlq) = try Processes.run(kcat, ["-b", "127.0.0.1:\(port)", "-C", "-t", "segmenter-dlq", "-e", "-q", "-f", "%s\\n"])
        try #require(read == 0)
        var byCoordinates: [String: String] = [:]
        for line in dlq.split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            #expect(!(object["error"] as! String).isEmpty)
            byCoordinates["\(object["source_topic"]!)/\(object["partition"]!)/\(object["offset"]!)"] = object["payload"] as? String
        }
        #expect(byCoordinates.values.sorted() == produced.invalidPayloads.sorted())
    }

    @Test func devBrokerAnswersKcatMetadata() throws {
        let kcat = try #require(Processes.which("kcat"))
        let (broker, port) = try startBroker()
        defer { broker.kill(SIGTERM) }
        let (status, metadata) = try Processes.run(kcat, ["-b", "127.0.0.1:\(port)", "-L"], timeout: 20)
        #expect(status == 0)
        #expect(metadata.contains("topic \"activity\" with 4 partitions"), "\(metadata)")
        #expect(metadata.contains("topic \"segmenter-dlq\""))
    }
}

/// What `segmenter generate --out` says it produced, folded independently of segmenter's code.
struct ProducedLog {
    struct Line { let topic: String; let valid: Bool; let duplicate: Bool; let payload: String }
    let lines: [Line]

    init(path: String) throws {
        lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { text in
            let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            return Line(topic: o["topic"] as! String, valid: o["valid"] as! Bool, duplicate: o["duplicate"] as! Bool,
                        payload: o["payload"] as! String)
        }
    }

    var total: Int { lines.count }
    var invalidPayloads: [String] { lines.filter { !$0.valid }.map(\.payload) }

    /// Per user: lifetime spend in USD cents (EUR at 1.08, half-even per event) and activity count.
    var expectedTotals: [String: (spend: Int64, activities: Int)] {
        var totals: [String: (spend: Int64, activities: Int)] = [:]
        for line in lines where line.valid && !line.duplicate {
            let o = try! JSONSerialization.jsonObject(with: Data(line.payload.utf8)) as! [String: Any]
            let user = o["user_id"] as! String
            var entry = totals[user] ?? (0, 0)
            let type = o["type"] as! String
            if line.topic == "billing" {
                let text = (o["amount"] as? String) ?? "\(o["amount"]!)"
                var cents = Int64((Decimal(string: text)! * 100 as NSDecimalNumber).int64Value)
                if (o["currency"] as! String) == "EUR" {
                    let product = cents * 108
                    var quotient = product / 100
                    let remainder = product % 100
                    if remainder > 50 || (remainder == 50 && quotient % 2 == 1) { quotient += 1 }
                    cents = quotient
                }
                entry.spend += type == "refund" ? -cents : cents
            } else if !["signup", "profile", "account_opened", "account_closed"].contains(type) {
                entry.activities += 1
            }
            totals[user] = entry
        }
        return totals
    }
}
