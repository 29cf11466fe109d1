import Foundation
import Testing
import SegmenterCore
import SegmenterStore

/// `preview` and `explain` against a state `run` built, as separate processes: the preview of a
/// tightened rule lists exactly the users a recomputation says, writes nothing, and `run` with
/// that config then publishes exactly those changes; `explain`'s next change is the store's timer.
@Suite(.serialized) struct PreviewExplainTests {
    static func yaml(threshold: Int) -> String {
        """
        segments:
          - name: big_spenders
            rule: spend(30d) > \(threshold)
          - name: regulars
            rule: active_days(7d) >= 3
        kpis:
          - name: spend_30d
            sum: spend(30d)
        alerts:
          - {name: few_big_spenders, segment: big_spenders, kpi: members, threshold: "< 50"}
        kpi_emit_interval: 200ms
        """
    }

    /// Every file of the state directory with bytes in it, byte for byte, but the `-shm` files:
    /// SQLite's shared-memory index of a WAL database, which every reader maps and updates (no
    /// data). A reader may also leave an empty `-wal` behind: no bytes, so not counted.
    func contents(_ directory: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where !name.hasSuffix("-shm") {
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            if !data.isEmpty { files[name] = data }
        }
        return files
    }

    @Test func aPreviewListsExactlyWhatRunThenPublishesAndWritesNothing() throws {
        let harness = try Harness()
        let produced = try harness.generate(["--users", "300", "--events", "12000", "--seed", "31"] + Harness.recent(days: 20))
        let current = try harness.writeConfig(batch: 500, extra: Self.yaml(threshold: 200))
        try harness.runToCompletion(config: current, total: produced.total)
        let state = harness.work.appendingPathComponent("state")
        // The tightened rule, on the same state directory
        let tightened = harness.work.appendingPathComponent("tightened.yaml").path
        try String(contentsOfFile: current, encoding: .utf8).replacingOccurrences(of: "spend(30d) > 200", with: "spend(30d) > 600")
            .write(toFile: tightened, atomically: true, encoding: .utf8)

        // When previewed
        let before = try contents(state)
        let (status, text) = try Processes.run(harness.bin, ["preview", "--config", tightened, "--against", current, "--json", "--sample", "100000"])
        try #require(status == 0, "\(text)")
        let preview = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        // Then nothing was written
        let afterwards = try contents(state)
        #expect(afterwards == before, "changed: \(Set(before.keys).union(afterwards.keys).filter { before[$0] != afterwards[$0] }.sorted())")
        // and the users who would leave big_spenders are exactly those a recomputation says
        let input = produced.lines.filter { $0.valid && !$0.duplicate }
        let now = try Recomputation(yaml: Self.yaml(threshold: 200), input: input).expectedMembers
        let after = try Recomputation(yaml: Self.yaml(threshold: 600), input: input).expectedMembers
        func members(_ set: Set<String>) -> Set<String> { Set(set.filter { $0.hasSuffix("/big_spenders") }.map { String($0.split(separator: "/")[0]) }) }
        let segments = preview["segments"] as! [[String: Any]]
        let big = try #require(segments.first { $0["segment"] as? String == "big_spenders" })
        let exiting = Set(big["exiting"] as! [String])
        #expect(!exiting.isEmpty && exiting == members(now).subtracting(members(after)))
        #expect((big["enter"] as? Int) == 0 && (big["exit"] as? Int) == exiting.count)
        #expect((segments.first { $0["segment"] as? String == "regulars" }?["exit"] as? Int) == 0)
        // and the alert on the members of big_spenders would flip
        let alerts = preview["alerts"] as! [[String: Any]]
        #expect(alerts.map { $0["alert"] as? String } == (members(after).count < 50 && members(now).count >= 50 ? ["few_big_spenders"] : []))
        // and a gate on exits fails the command
        let (gated, _) = try Processes.run(harness.bin, ["preview", "--config", tightened, "--fail-if-exits-over", "\(exiting.count - 1)"])
        #expect(gated == 3)

        // When `run` starts with the tightened config
        #expect(try harness.readTopic("segment-membership").allSatisfy { $0["cause"] as? String != "config" })
        try harness.runToCompletion(config: tightened, total: produced.total)
        // Then what it published (cause config) is exactly the preview
        let changes = try harness.readTopic("segment-membership").filter { $0["cause"] as? String == "config" }
        #expect(Set(changes.map { "\($0["user_id"]!) \($0["segment"]!) \($0["change"]!)" }) == Set(exiting.map { "\($0) big_spenders exit" }))
        // and the KPI values it publishes are the preview's "after"
        var latest: [String: (seq: Int, current: Double?)] = [:]
        for message in try harness.readTopic("segment-kpi-deltas") {
            let pair = "\(message["segment"]!)/\(message["kpi"]!)", seq = (message["seq"] as! NSNumber).intValue
            if seq > latest[pair]?.seq ?? 0 { latest[pair] = (seq, (message["current"] as? NSNumber)?.doubleValue) }
        }
        for kpi in preview["kpis"] as! [[String: Any]] {
            let pair = "\(kpi["segment"]!)/\(kpi["kpi"]!)", expected = (kpi["after"] as? NSNumber)?.doubleValue
            let published = latest[pair]?.current
            #expect(expected.map { e in published.map { abs($0 - e) <= 1e-6 * max(1, abs(e)) } ?? false } ?? (published == nil),
                    "\(pair): preview \(String(describing: expected)), published \(String(describing: published))")
        }
    }

    @Test func aPreviewRunsBesideARunningServiceWhichKeepsCommitting() throws {
        let harness = try Harness()
        let produced = try harness.generate(["--users", "200", "--events", "20000", "--seed", "32"] + Harness.recent(days: 10))
        let config = try harness.writeConfig(batch: 100, extra: Self.yaml(threshold: 200))
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        let deadline = Date().addingTimeInterval(60)
        while harness.committedOffsets(config: config) == 0, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        var previews = 0
        while harness.committedOffsets(config: config) < produced.total, Date() < deadline {
            let (status, text) = try Processes.run(harness.bin, ["preview", "--config", config, "--json"])
            #expect(status == 0, "\(text)")
            previews += 1
        }
        #expect(harness.committedOffsets(config: config) == produced.total, "\(run.output.suffix(1500))")
        #expect(previews > 0)
    }

    @Test func explainShowsEachRuleAndTheTimerTheStoreHolds() throws {
        let harness = try Harness()
        let produced = try harness.generate(["--users", "100", "--events", "4000", "--seed", "33"] + Harness.recent(days: 20))
        let config = try harness.writeConfig(batch: 500, extra: Self.yaml(threshold: 200))
        try harness.runToCompletion(config: config, total: produced.total)
        let reader = try StateReader(directory: harness.work.appendingPathComponent("state"))
        let published = try harness.readTopic("segment-membership")
        var checked = 0, withHistory = 0
        for user in ["u1", "u2", "u3", "u4", "u5"] {
            let (status, text) = try Processes.run(harness.bin, ["explain", user, "--config", config, "--json"])
            try #require(status == 0, "\(text)")
            let explanation = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            let segments = explanation["segments"] as! [[String: Any]]
            #expect(segments.map { $0["segment"] as? String } == ["all", "big_spenders", "regulars"])
            let big = segments[1]["explanation"] as! [String: Any]
            #expect(big["text"] as? String == "spend(30d) > 200" && (big["parts"] as! [Any]).count == 2)
            // The next change by time is the timer the store holds for the user
            let partition = Partitioner.consistentRandom.partition(of: user, count: harness.partitions)
            let timer = try reader.timer(of: user, partition: partition)
            let next = (explanation["next_change"] as? [String: Any])?["at"] as? String
            #expect(next == timer?.description, "\(user): explain says \(String(describing: next)), the store holds \(String(describing: timer))")
            if timer != nil { checked += 1 }
            // and its recent history is what was published for the user, in order (the last 20)
            let history = (explanation["history"] as! [[String: Any]]).map { "\($0["segment"]!) \($0["change"]!) \($0["as_of"]!) \($0["cause"]!)" }
            let theirs = published.filter { $0["user_id"] as? String == user }.map { "\($0["segment"]!) \($0["change"]!) \($0["as_of"]!) \($0["cause"]!)" }
            #expect(history == Array(theirs.suffix(20)), "\(user): explain's history \(history), published \(theirs)")
            if !history.isEmpty { withHistory += 1 }
        }
        #expect(checked > 0 && withHistory > 0)
        let (missing, _) = try Processes.run(harness.bin, ["explain", "nobody", "--config", config])
        #expect(missing != 0)
    }
}
