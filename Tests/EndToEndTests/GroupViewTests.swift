import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import SegmenterCore

/// `inspect user`, `inspect segment` and `export features` answer for the whole group: with two
/// instances, asked through either one's config, they equal one instance's answers over the
/// same input, and they say which instance answered.
@Suite(.serialized) struct GroupViewTests {
    static let token = "group-view-token-\(UUID().uuidString.prefix(8))"

    @Test func twoInstancesAnswerAsOneAndSayWhichInstanceAnswered() throws {
        let harness = try Harness()
        setenv("E2E_GROUP_TOKEN", Self.token, 1)
        let yaml = SegmentOutputsTests.segmentsYAML(lateCohort: DayCalendar.isoDate(DayNumber(Int64(Date().timeIntervalSince1970) / 86_400) - 3))
        func http() -> String { "\nhttp:\n  port: \(Processes.freePort())\n  auth_token: ${E2E_GROUP_TOKEN}\n" }
        let pair = "pair-\(UUID().uuidString)"
        let configs = try ["a", "b"].map { try harness.writeConfig(batch: 200, extra: yaml + http(), instance: $0, group: pair, staticMembership: true) }
        let solo = try harness.writeConfig(batch: 200, extra: yaml + http(), instance: "solo", group: "solo-\(UUID().uuidString)")
        let processes = try (configs + [solo]).enumerated().map { index, config in
            try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run-\(index).log"))
        }
        defer { for process in processes { process.kill(SIGTERM); _ = process.wait(seconds: 30) } }
        let deadline = Date().addingTimeInterval(60)
        while !processes.allSatisfy({ $0.output.contains("] assigned") }), Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        try #require(harness.waitUntilGroupSplits(Array(processes.prefix(2))), "the pair's group settles with both members")

        // Given the same input consumed by a group of two and by one instance alone
        let produced = try harness.generate(Harness.recent(days: 10) + ["--users", "200", "--events", "6000", "--seed", "41"])
        let done = Date().addingTimeInterval(90)
        while (configs.map { harness.committedOffsets(config: $0) }.reduce(0, +) < produced.total
               || harness.committedOffsets(config: solo) < produced.total), Date() < done { Thread.sleep(forTimeInterval: 0.2) }
        let split = configs.map { harness.committedOffsets(config: $0) }
        try #require(split.reduce(0, +) == produced.total && split.allSatisfy { $0 > 0 }, "both must own partitions: \(split)")
        for config in configs + [solo] { harness.waitUntilPairsSettle(config: config) }
        // Announcements of the final partials: the group's view of each segment reaches the single instance's
        let segments = ["recent_spenders", "inactive_new_users"]
        try waitUntil(timeout: 30) {
            try segments.allSatisfy { segment in
                Self.body(try Processes.run(harness.bin, ["inspect", "segment", segment, "--config", solo]).1)
                    == Self.body(try Processes.run(harness.bin, ["inspect", "segment", segment, "--config", configs[1]]).1)
            }
        }

        func run(_ arguments: [String]) throws -> (String, String) {
            let log = harness.work.appendingPathComponent("cli-\(UUID().uuidString).err")
            let cli = try Processes.Running(harness.bin, arguments, log: log)
            _ = cli.wait(seconds: 60)
            return (cli.output, cli.output)
        }
        // Then `export features` through either instance equals the single instance's
        let expected = try exportLines(harness, solo)
        for config in configs {
            let lines = try exportLines(harness, config)
            #expect(lines == expected, "export through \(config): \(lines.count) lines, expected \(expected.count)")
        }
        let (_, exportLog) = try run(["export", "features", "--config", configs[0]])
        #expect(exportLog.contains("instance \(pair)-a") && exportLog.contains("instance \(pair)-b"), "\(exportLog.suffix(600))")

        // And `inspect user` for users of both instances is answered by their owner, equal to the single instance's answer
        let users = ["u1", "u2", "u3", "u4", "u5", "u6"]
        var answeredBy: Set<String> = []
        for user in users {
            let (_, alone) = try Processes.run(harness.bin, ["inspect", "user", user, "--config", solo])
            let (_, grouped) = try Processes.run(harness.bin, ["inspect", "user", user, "--config", configs[0]])
            #expect(Self.body(grouped) == Self.body(alone) && !Self.body(alone).isEmpty, "\(user):\n\(grouped)\nvs\n\(alone)")
            if let line = grouped.split(separator: "\n").first, let range = line.range(of: "answered by instance ") {
                answeredBy.insert(String(line[range.upperBound...].prefix { $0 != " " }))
            }
        }
        #expect(answeredBy == ["\(pair)-a", "\(pair)-b"], "owners that answered: \(answeredBy)")

        // And `inspect segment` shows the group's KPIs, the single instance's values
        for segment in segments {
            let (_, alone) = try Processes.run(harness.bin, ["inspect", "segment", segment, "--config", solo])
            let (_, grouped) = try Processes.run(harness.bin, ["inspect", "segment", segment, "--config", configs[1]])
            #expect(Self.body(grouped) == Self.body(alone), "\(segment):\n\(grouped)\nvs\n\(alone)")
            #expect(grouped.contains("for the whole group") && grouped.contains("\(pair)-a owns partitions"), "\(grouped)")
            let (_, local) = try Processes.run(harness.bin, ["inspect", "segment", segment, "--config", configs[1], "--local"])
            #expect(local.contains("local state directory"))
        }
    }

    /// A firing rise alert's drill-down counts the members of every partition, not only the KPI
    /// leader's: the leader merges the other instance's sums (asked over its API). Deterministic
    /// (issue 25, item 9): nothing taken mid-stream is compared with the end state; the leader
    /// says how many members each side contributed when it fired, and both must have.
    @Test func theLeadersDrillDownCoversTheOtherInstancesPartitions() async throws {
        let harness = try Harness()
        setenv("E2E_GROUP_TOKEN", Self.token, 1)
        let start = DayNumber(Int64(Date().timeIntervalSince1970) / 86_400) - 20
        let yaml = SegmentOutputsTests.segmentsYAML(lateCohort: DayCalendar.isoDate(start + 14)) + """

            alerts:
              - {name: zero_share_rise, segment: all, kpi: zero_share, rise: 30%, baseline_days: 3}
            """
        let ports = [Processes.freePort(), Processes.freePort()]
        let pair = "pair-\(UUID().uuidString)"
        let configs = try ["a", "b"].enumerated().map { index, name in
            try harness.writeConfig(batch: 300, extra: yaml + "\nhttp:\n  port: \(ports[index])\n  auth_token: ${E2E_GROUP_TOKEN}\n",
                                    instance: name, group: pair, staticMembership: true)
        }
        let processes = try configs.enumerated().map { index, config in
            try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("pair-\(index).log"))
        }
        defer { for process in processes { process.kill(SIGTERM); _ = process.wait(seconds: 30) } }
        let joined = Date().addingTimeInterval(60)
        while !processes.allSatisfy({ $0.output.contains("] assigned") }), Date() < joined { try await Task.sleep(for: .milliseconds(100)) }
        try #require(harness.waitUntilGroupSplits(processes), "the group settles with both members")

        // Given 20 days of input at a pace (the clock passes every midnight, so each day's end
        // is recorded: the baseline), where everyone who signs up from day 14 stays inactive
        let produced = try harness.generate(["--users", "400", "--events", "12000", "--days", "20", "--start", DayCalendar.isoDate(start),
                                             "--incident-after", DayCalendar.isoDate(start + 14), "--seed", "43", "--rate", "1000"])
        let done = Date().addingTimeInterval(90)
        while configs.map({ harness.committedOffsets(config: $0) }).reduce(0, +) < produced.total, Date() < done { try await Task.sleep(for: .milliseconds(200)) }
        for config in configs { harness.waitUntilPairsSettle(config: config) }

        // When `all`'s zero-activity share rose and the alert fired, with a drill-down
        let logs = processes.map { String($0.output.suffix(800)) }.joined(separator: "\n---\n")
        let alert = try #require(try harness.readTopic("segment-alerts").last { $0["state"] as? String == "firing" }, "no firing alert: \(logs)")
        let drill = try #require(alert["drill_down"] as? [[String: Any]], "\(alert)")
        let leader = try #require(processes.firstIndex { $0.output.contains("KPI leader (this instance owns partition 0)") }, "\(logs)")

        // Then its sums merged both instances' members: the leader's own partitions and the other's
        let line = try #require(processes[leader].output.split(separator: "\n").first { $0.contains("drill-down of zero_share_rise:") },
                                "\(logs)")
        let numbers = line.split(separator: ":").last!.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        try #require(numbers.count == 4, "\(line)")
        let (local, localPartitions, remote, remotePartitions) = (numbers[0], numbers[1], numbers[2], numbers[3])
        #expect(local > 0 && remote > 0 && localPartitions > 0 && remotePartitions > 0 && localPartitions + remotePartitions == harness.partitions, "\(line)")
        #expect(drill.contains { $0["dimension"] as? String == "signup_week" }, "\(drill)")
        // and the other instance answers what the leader asks: its own partitions' members
        func owned(_ index: Int) async throws -> Int {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(ports[index])/api/drilldown?segment=all&kpi=zero_share&scope=owned")!)
            request.setValue("Bearer \(Self.token)", forHTTPHeaderField: "Authorization")
            let (data, _) = try await URLSession.shared.data(for: request)
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let weeks = (object["cells"] as? [String: Any])?["signup_week"] as? [String: [String: Any]] ?? [:]
            return weeks.values.reduce(0) { $0 + (($1["members"] as? NSNumber)?.intValue ?? 0) }
        }
        #expect(try await owned(1 - leader) > 0)
        #expect(!processes.contains { $0.output.contains("could not be asked") }, "\(logs)")
    }

    /// Every line but the first (which says who answered).
    static func body(_ output: String) -> [Substring] { Array(output.split(separator: "\n").dropFirst()) }

    func exportLines(_ harness: Harness, _ config: String) throws -> [Substring] {
        let (status, text) = try Processes.run(harness.bin, ["export", "features", "--config", config])
        #expect(status == 0)
        return text.split(separator: "\n").sorted()
    }
}
