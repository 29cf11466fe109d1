import Foundation
import Testing

/// `segmenter dev-broker` and `segmenter run` as separate processes; `run` is SIGKILLed
/// mid-stream and restarted. Every valid event must count exactly once, every invalid one
/// must be in the dead-letter topic.
@Suite(.serialized) struct CrashRecoveryTests {
    @Test func sigkillMidStreamCountsEveryValidEventOnceAndDeadLettersEveryInvalidOne() throws {
        let harness = try Harness()
        let produced = try harness.generate(["--users", "400", "--events", "40000", "--invalid-rate", "0.01",
                                             "--duplicate-rate", "0.02", "--seed", "7"])
        let config = try harness.writeConfig(batch: 250)

        // Given a run killed without warning mid-stream, then restarted until it consumed everything
        try harness.runKilledMidStream(config: config, total: produced.total)

        // Then every valid event counted exactly once, and every invalid one is in the DLQ
        try harness.expectExactlyOnce(config: config, produced: produced)
    }

    /// The state directory fills up mid-stream: `run` stops with an error naming the cause, the
    /// state stays consistent, and with room again it resumes and counts everything once.
    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs needs root"))
    func aFullDiskStopsCleanlyAndLosesNothing() throws {
        let harness = try Harness()
        let produced = try harness.generate(["--users", "300", "--events", "20000", "--invalid-rate", "0.01", "--seed", "5"])
        let config = try harness.writeConfig(batch: 500)
        let state = harness.work.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try #require(Processes.run("/bin/mount", ["-t", "tmpfs", "-o", "size=1200k", "tmpfs", state]).0 == 0)
        defer { _ = try? Processes.run("/bin/umount", ["-l", state]) }

        let full = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("full.log"))
        let status = full.wait(seconds: 120)
        #expect(status != nil && status != 0, "run must stop with an error when the disk is full")
        #expect(full.output.contains("disk holding the state directory is full"), "\(full.output.suffix(1500))")
        let partial = harness.committedOffsets(config: config)
        #expect(partial < produced.total, "the disk should fill before the end (committed \(partial))")

        try #require(Processes.run("/bin/mount", ["-o", "remount,size=200m", state]).0 == 0)
        try harness.runToCompletion(config: config, total: produced.total)
        try harness.expectExactlyOnce(config: config, produced: produced)
    }

    @Test func devBrokerAnswersKcatMetadata() throws {
        let harness = try Harness()
        let (status, metadata) = try Processes.run(harness.kcat, ["-b", harness.bootstrap, "-L"], timeout: 20)
        #expect(status == 0)
        #expect(metadata.contains("topic \"activity\" with 4 partitions"), "\(metadata)")
        #expect(metadata.contains("topic \"segmenter-dlq\""))
    }
}

/// What `segmenter generate --out` says it produced, folded independently of segmenter's code.
struct ProducedLog {
    struct Line { let topic: String; let valid: Bool; let duplicate: Bool; let payload: String }
    var lines: [Line]

    init(lines: [Line]) { self.lines = lines }

    static func + (a: ProducedLog, b: ProducedLog) -> ProducedLog { ProducedLog(lines: a.lines + b.lines) }

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
