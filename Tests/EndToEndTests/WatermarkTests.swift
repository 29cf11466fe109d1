import Foundation
import Testing
import SegmenterCore

/// Event time per partition pair (SPEC §3), end to end as separate processes: one partition's
/// backlog is produced only after the other five have been consumed. Its users must not be
/// moved by time their own events have not reached (the false "zero activity after signup"
/// flag), and the final outputs must still equal a recomputation.
@Suite(.serialized) struct WatermarkTests {
    static let yaml = """
        segments:
          - name: inactive_new_users
            rule: hours_since_signup >= 24 and activities_since_signup = 0
          - name: recent_spenders
            rule: spend(3d) > 100
        kpis:
          - name: zero_share
            share: activities_since_signup = 0
          - name: spend_3d
            sum: spend(3d)
        kpi_emit_interval: 200ms
        """
    static let partitions = 6
    static let latePartition: Int32 = 5

    @Test func aLatePartitionsUsersAreNotFlaggedByTheOthersTime() throws {
        try lateBacklog(killedWhileCatchingUp: false)
    }

    @Test func aLatePartitionsUsersAreNotFlaggedAcrossSigkillRestarts() throws {
        try lateBacklog(killedWhileCatchingUp: true)
    }

    func lateBacklog(killedWhileCatchingUp: Bool) throws {
        let harness = try Harness(partitions: Self.partitions)
        let input = LateInput(partitions: Self.partitions)
        let config = try harness.writeConfig(batch: 40, extra: Self.yaml)
        let (onTime, late) = input.lines.split { $0.partition != Self.latePartition }
        try input.produce(onTime, with: harness)

        // Given a run that consumed the five partitions that are on time (the sixth is empty)
        let first = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run1.log"))
        try waitForCommitted(onTime.count, harness: harness, config: config, run: first)
        // When the sixth partition's backlog, nine days of it, arrives
        if killedWhileCatchingUp {
            // (in three parts, the service SIGKILLed in the middle of the first two and restarted)
            var running = first
            var produced = onTime.count
            let parts = stride(from: 0, to: late.count, by: late.count / 3 + 1).map { Array(late[$0..<min($0 + late.count / 3 + 1, late.count)]) }
            for (round, part) in parts.enumerated() {
                try input.produce(part, with: harness)
                produced += part.count
                guard round < parts.count - 1 else { break }
                try waitForCommitted(produced - part.count / 2, harness: harness, config: config, run: running)
                running.kill(SIGKILL)
                _ = running.wait(seconds: 30)
                running = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run-k\(round).log"))
            }
            try waitForCommitted(input.lines.count, harness: harness, config: config, run: running)
            running.kill(SIGTERM)
            #expect(running.wait(seconds: 30) == 0)
        } else {
            try input.produce(late, with: harness)
            try waitForCommitted(input.lines.count, harness: harness, config: config, run: first)
            first.kill(SIGTERM)
            #expect(first.wait(seconds: 30) == 0)
        }
        try harness.runToCompletion(config: config, total: input.lines.count)

        // Then nobody entered inactive_new_users while their own activity after signup, up to
        // that time, was in the input: checked against the input, user by user
        let membership = try harness.readTopic("segment-membership")
        var falseFlags: [String] = []
        var lateUsersFlaggedByTime: Set<String> = []
        for message in membership where message["segment"] as? String == "inactive_new_users" && message["change"] as? String == "enter" {
            let user = message["user_id"] as! String
            let asOf = try RFC3339.parse(message["as_of"] as! String).get()
            if let active = input.firstActivityAfterSignup[user], active <= asOf {
                falseFlags.append("\(user) flagged as of \(asOf) (\(message["cause"]!)) though active at \(active)")
            }
            if input.partition(of: user) == Self.latePartition, message["cause"] as? String == "time" { lateUsersFlaggedByTime.insert(user) }
        }
        #expect(falseFlags.isEmpty, "\(falseFlags.count) false flags: \(falseFlags.prefix(5))")
        // and the late partition's truly inactive users were flagged, by time (after a SIGKILL the
        // partition's users may have their whole membership published again, cause `event`)
        let truth = try Recomputation(yaml: Self.yaml, input: input.lines.map(\.produced), partitions: Self.partitions)
        let lateInactive = Set(input.inactiveUsers.filter {
            input.partition(of: $0) == Self.latePartition && truth.expectedMembers.contains("\($0)/inactive_new_users")
        })
        let otherwise = lateInactive.symmetricDifference(lateUsersFlaggedByTime).sorted().prefix(4).map { user in
            user + ": " + membership.filter { $0["user_id"] as? String == user }.map { "\($0["change"]!) \($0["segment"]!) by \($0["cause"]!) as of \($0["as_of"]!)" }.joined(separator: "; ")
        }
        #expect(!lateInactive.isEmpty && (killedWhileCatchingUp ? lateUsersFlaggedByTime.isSubset(of: lateInactive) : lateUsersFlaggedByTime == lateInactive),
                "\(otherwise)")
        // and the final outputs equal a recomputation
        truth.expectFoldedMembership(membership)
        truth.expectKPIChains(try harness.readTopic("segment-kpi-deltas"))
    }

    /// Two instances; one is stopped while input keeps arriving (the other takes its partitions
    /// over from their snapshots), then restarted (it takes some back). Partitions move between
    /// instances at different points of their streams: no user is flagged by another pair's time,
    /// and the incident alert on the absence segment never fires.
    @Test func twoInstancesWithOneStoppedAndRestartedFlagNobodyFalsely() throws {
        let harness = try Harness()
        let input = LateInput(partitions: harness.partitions)
        let truth = try Recomputation(yaml: Self.yaml, input: input.lines.map(\.produced), partitions: harness.partitions)
        let trulyInactive = truth.expectedMembers.filter { $0.hasSuffix("/inactive_new_users") }.count
        // Members of inactive_new_users only ever grow in the input (nobody leaves it), so more
        // than the final count at any moment can only be false flags.
        let yaml = Self.yaml + """

            alerts:
              - {name: inactive_surge, segment: inactive_new_users, kpi: members, threshold: "> \(trulyInactive)"}
            state_snapshot_interval: 1s
            """
        let group = "watermark-\(UUID().uuidString)"
        // Dynamic members: a graceful stop leaves the group at once, which is what this test
        // needs (a static member keeps its partitions until its session expires).
        let configs = try ["a", "b"].map {
            try harness.writeConfig(batch: 40, extra: yaml, instance: $0, group: group, staticMembership: false)
        }
        func start(_ index: Int, _ name: String) throws -> Processes.Running {
            try Processes.Running(harness.bin, ["run", "--config", configs[index]], log: harness.work.appendingPathComponent("run-\(name).log"))
        }
        /// Per input partition, the furthest any instance's state got (a partition that moved
        /// away leaves a stale copy behind).
        func committed() -> Int {
            var furthest: [String: Int] = [:]
            for config in configs {
                guard let (status, text) = try? Processes.run(harness.bin, ["inspect", "state", "--no-lag", "--config", config], timeout: 10),
                      status == 0 else { continue }
                for line in text.split(separator: "\n") where line.hasPrefix("offset ") {
                    let parts = line.split(separator: " ")
                    let next = Int(line.split(separator: "=").last ?? "") ?? 0
                    furthest[String(parts[1]), default: 0] = max(furthest[String(parts[1])] ?? 0, next)
                }
            }
            return furthest.values.reduce(0, +)
        }
        func waitFor(_ count: Int, _ what: String) throws {
            let deadline = Date().addingTimeInterval(120)
            while committed() < count, Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
            try #require(committed() >= count, "\(what): committed \(committed()) of \(count)")
        }
        let thirds = stride(from: 0, to: input.lines.count, by: input.lines.count / 3 + 1).map {
            Array(input.lines[$0..<min($0 + input.lines.count / 3 + 1, input.lines.count)])
        }

        // Given two instances that consumed the first third of the stream
        let a = try start(0, "a")
        var b = try start(1, "b")
        try input.produce(thirds[0], with: harness)
        try waitFor(thirds[0].count, "both instances")
        try #require(harness.waitUntilSnapshotsAreCurrent(b, config: configs[1]), "a snapshot round: \(b.output.suffix(1500))")
        // When one is stopped while the second third arrives (the other takes its partitions over)
        b.kill(SIGTERM)
        #expect(b.wait(seconds: 30) == 0)
        try input.produce(thirds[1], with: harness)
        try waitFor(thirds[0].count + thirds[1].count, "the survivor")
        try #require(harness.waitUntilSnapshotsAreCurrent(a, config: configs[0]), "a snapshot round: \(a.output.suffix(1500))")
        // and is restarted for the last third
        b = try start(1, "b2")
        try input.produce(thirds[2], with: harness)
        try waitFor(input.lines.count, "both again")
        // Until every pair's watermark is its input's last event (read to the end and idle), on
        // whichever instance owns it now
        var pairEnds: [Int32: Instant] = [:]
        for line in input.lines { pairEnds[line.partition] = max(pairEnds[line.partition] ?? line.ts, line.ts) }
        func watermarks() -> [Int32: String] {
            var furthest: [Int32: String] = [:]
            for config in configs {
                guard let (status, text) = try? Processes.run(harness.bin, ["inspect", "state", "--no-lag", "--config", config], timeout: 10),
                      status == 0 else { continue }
                for line in text.split(separator: "\n") where line.hasPrefix("partition ") {
                    let words = line.split(separator: " ")
                    guard words.count > 3, words[2] == "watermark", let p = Int32(words[1].dropLast()) else { continue }
                    furthest[p] = max(furthest[p] ?? "", String(words[3]).trimmingCharacters(in: CharacterSet(charactersIn: ",;")))
                }
            }
            return furthest
        }
        let expected = pairEnds.mapValues(\.description)
        let settle = Date().addingTimeInterval(30)
        while watermarks() != expected, Date() < settle { Thread.sleep(forTimeInterval: 0.3) }
        #expect(watermarks() == expected, "pairs' watermarks \(watermarks()), their inputs end at \(expected)")
        harness.waitUntilKPIChainsMatch(truth)  // announcements, an emit interval, the relay
        for run in [a, b] { run.kill(SIGTERM) }
        for run in [a, b] { #expect(run.wait(seconds: 30) == 0, "\(run.output.suffix(1500))") }

        // Then nobody entered inactive_new_users while active after signup up to that time, on either instance
        let membership = try harness.readTopic("segment-membership")
        let falseFlags = membership.filter { message in
            guard message["segment"] as? String == "inactive_new_users", message["change"] as? String == "enter",
                  let active = input.firstActivityAfterSignup[message["user_id"] as! String],
                  let asOf = try? RFC3339.parse(message["as_of"] as! String).get() else { return false }
            return active <= asOf
        }
        let histories = falseFlags.prefix(3).map { flag in
            membership.filter { $0["user_id"] as? String == flag["user_id"] as? String }.map { "\($0["segment"]!) \($0["change"]!) \($0["cause"]!) \($0["as_of"]!)" }
        }
        #expect(falseFlags.isEmpty, "\(falseFlags.count) false flags: \(falseFlags.prefix(5)); their messages: \(histories)")
        // and the incident alert never fired
        let alerts = try harness.readTopic("segment-alerts").filter { $0["alert"] as? String == "inactive_surge" }
        #expect(alerts.isEmpty, "\(alerts)")
        // and what was published folds to the recomputation
        truth.expectFoldedMembership(membership)
        truth.expectKPIChains(try harness.readTopic("segment-kpi-deltas"))
    }

    private func waitForCommitted(_ count: Int, harness: Harness, config: String, run: Processes.Running) throws {
        let deadline = Date().addingTimeInterval(120)
        while harness.committedOffsets(config: config) < count, Date() < deadline, run.process.isRunning { Thread.sleep(forTimeInterval: 0.1) }
        try #require(harness.committedOffsets(config: config) >= count, "run log: \(run.output.suffix(2000))")
    }
}

/// 240 users signing up over six days: 7 in 10 active a few hours after signing up (and daily
/// for three more days), every third one spending twice; the others never active.
struct LateInput {
    struct Line {
        let partition: Int32
        let topic: String
        let key: String
        let ts: Instant
        let payload: String
        var produced: ProducedLog.Line { ProducedLog.Line(topic: topic, valid: true, duplicate: false, payload: payload) }
    }

    let partitions: Int
    private(set) var lines: [Line] = []
    private(set) var firstActivityAfterSignup: [String: Instant] = [:]
    private(set) var inactiveUsers: [String] = []

    init(partitions: Int) {
        self.partitions = partitions
        let start = Instant(seconds: (Int64(Date().timeIntervalSince1970) / 86_400 - 12) * 86_400)
        for i in 0..<240 {
            let user = "w\(i)"
            let signup = start.adding(seconds: Int64(i) * 35 * 60)
            add(user, "activity", signup, #""type":"signup""#, id: "s\(i)")
            if i % 10 < 7 {
                let first = signup.adding(seconds: Int64(2 + i % 18) * 3600)
                firstActivityAfterSignup[user] = first
                for day in 0..<4 { add(user, "activity", first.adding(seconds: Int64(day) * 86_400), #""type":"session","duration_s":600"#, id: "a\(i)-\(day)") }
            } else {
                inactiveUsers.append(user)
            }
            if i % 3 == 0 {
                for hours: Int64 in [5, 30] { add(user, "billing", signup.adding(seconds: hours * 3600), #""type":"charge","amount":"60.00","currency":"USD""#, id: "c\(i)-\(hours)") }
            }
        }
        lines.sort { $0.ts < $1.ts }
    }

    func partition(of user: String) -> Int32 { Partitioner.consistentRandom.partition(of: user, count: partitions) }

    private mutating func add(_ user: String, _ topic: String, _ ts: Instant, _ fields: String, id: String) {
        let payload = #"{"event_id":"\#(id)","user_id":"\#(user)","ts":"\#(ts)",\#(fields)}"#
        lines.append(Line(partition: partition(of: user), topic: topic, key: user, ts: ts, payload: payload))
    }

    /// Produces `lines` to their partitions, in event-time order within each.
    func produce(_ lines: some Sequence<Line>, with harness: Harness) throws {
        let groups = Dictionary(grouping: lines) { "\($0.topic)/\($0.partition)" }
        for (_, group) in groups.sorted(by: { $0.key < $1.key }) {
            try harness.produce(topic: group[0].topic, messages: group.map { ($0.key, $0.payload) }, partition: Int(group[0].partition))
        }
    }
}

extension Array {
    /// The elements that satisfy `belongs` and the others, each in order.
    func split(_ belongs: (Element) -> Bool) -> ([Element], [Element]) {
        var yes: [Element] = [], no: [Element] = []
        for element in self { if belongs(element) { yes.append(element) } else { no.append(element) } }
        return (yes, no)
    }
}
