import Foundation
import Testing
import SegmenterCore
import SegmenterService
import HTTP
import ServiceConfig
import SegmenterStore

/// Replays never double count (SPEC §7), end to end with separate processes: an input whose
/// 30-day windows span 45 days of event time is consumed, then produced again (an offset reset,
/// a CDC connector re-running its snapshot), then again interleaved with new events.
@Suite(.serialized) struct ReplayTests {
    static let yaml = """
        metrics:
          - name: logins
            count: type = 'login'
          - name: features_used
            count_distinct: prop.feature
          - name: paid_checkouts
            sequence: {first: type = 'checkout_started', then: type = 'purchase', within: 24h}
        segments:
          - name: big_spenders
            rule: spend(30d) > 400
          - name: regulars
            rule: logins(30d) >= 8 and features_used(lifetime) >= 4
          - name: inactive_new_users
            rule: hours_since_signup >= 24 and activities_since_signup = 0
        kpis:
          - name: total_spend_30d
            sum: spend(30d)
          - name: arpu_30d
            avg: spend(30d)
          - name: paid_checkouts_30d
            sum: paid_checkouts(30d)
        kpi_emit_interval: 200ms
        """
    /// The default horizon for these rules: the longest window plus a day.
    static let horizon = DedupeHorizon(longestWindowDays: 30)

    @Test func replayedInputChangesNothingAndWhatIsTooOldIsDeadLettered() throws {
        let harness = try Harness()
        let today = DayNumber(Int64(Date().timeIntervalSince1970) / 86_400)
        let input = ["--users", "300", "--events", "12000", "--days", "45", "--start", DayCalendar.isoDate(today - 46),
                     "--duplicate-rate", "0.02", "--invalid-rate", "0.01", "--seed", "41"]
        // Given the input consumed once
        let first = try harness.generate(input, log: "first.jsonl")
        let config = try harness.writeConfig(batch: 500, extra: Self.yaml)
        try harness.runToCompletion(config: config, total: first.total)
        let membershipOnce = try harness.readTopic("segment-membership")
        let kpisOnce = try harness.readTopic("segment-kpi-deltas")
        let featuresOnce = try features(harness, config)
        let firstPass = try inputMessages(harness)

        // When the same input is produced again
        let replay = try harness.generate(input, log: "replay.jsonl")
        #expect(replay.lines.map(\.payload) == first.lines.map(\.payload), "generate must be deterministic")
        try harness.runToCompletion(config: config, total: first.total * 2)

        // Then no output but dead letters: memberships, KPIs and features are as after one pass
        #expect(try harness.readTopic("segment-membership").count == membershipOnce.count)
        #expect(try harness.readTopic("segment-kpi-deltas").count == kpisOnce.count)
        #expect(try features(harness, config) == featuresOnce)
        // and exactly the replayed events older than their partition pair's watermark after the
        // first pass (SPEC §3: both topics read to their end, the later of their latest events)
        // minus the horizon are in the dead-letter topic, with that reason
        let letters = try deadLetters(harness)
        var tooOld = 0
        var pairWatermarks: [Int32: Instant] = [:]
        for (tp, once) in firstPass {
            for ts in once.compactMap({ try? decode($0.payload, topic: tp.topic).ts }) where pairWatermarks[tp.partition].map({ ts > $0 }) ?? true {
                pairWatermarks[tp.partition] = ts
            }
        }
        for (tp, messages) in try inputMessages(harness) {
            let once = firstPass[tp] ?? []
            let watermark = try #require(pairWatermarks[tp.partition])
            for message in messages.dropFirst(once.count) {
                guard let event = try? decode(message.payload, topic: tp.topic) else { continue }  // invalid: dead-lettered again
                let letter = letters["\(tp.topic)/\(tp.partition)/\(message.offset)"]
                // Sign-up, profile and account events apply at any age (SPEC §7): never dead-lettered as too old.
                if Self.horizon.admits(event.ts, at: watermark) || event.body.isIdempotent {
                    #expect(letter == nil, "\(tp) offset \(message.offset) is inside the horizon or idempotent: \(letter ?? "")")
                } else {
                    tooOld += 1
                    #expect(letter?.contains("older than the dedupe horizon") == true, "\(tp) offset \(message.offset): \(letter ?? "missing")")
                }
            }
        }
        #expect(tooOld > first.total / 50, "the first 14 of the 45 days are beyond the horizon: \(tooOld) of \(first.total)")

        // When the input comes a third time, interleaved with new events
        let newLog = harness.work.appendingPathComponent("new.jsonl").path
        let newer = try Processes.Running(harness.bin, ["generate", "--bootstrap-servers", harness.bootstrap, "--out", newLog,
                                                        "--users", "100", "--user-prefix", "n", "--events", "3000", "--seed", "42",
                                                        "--duplicate-rate", "0.02", "--rate", "3000"] + Harness.recent(days: 5),
                                          log: harness.work.appendingPathComponent("new.log"))
        _ = try harness.generate(input + ["--rate", "6000"], log: "replay2.jsonl")
        #expect(newer.wait(seconds: 60) == 0)
        let new = try ProducedLog(path: newLog)
        try harness.runToCompletion(config: config, total: first.total * 3 + new.total)

        // Then memberships, KPIs and features equal a single pass over the distinct events
        let distinct = (first.lines + new.lines).filter { $0.valid && !$0.duplicate }
        let truth = try Recomputation(yaml: Self.yaml, input: distinct)
        truth.expectFoldedMembership(try harness.readTopic("segment-membership"))
        truth.expectKPIChains(try harness.readTopic("segment-kpi-deltas"))
        try expectFeatures(try features(harness, config), of: distinct)
    }

    // MARK: Helpers

    func decode(_ payload: String, topic: String) throws -> UserEvent {
        try EventDecoder(currency: "USD", fxRates: ["EUR": ExchangeRate("1.08")!])
            .decode(Array(payload.utf8), from: topic == "billing" ? .billing : .activity, wallClock: Instant.wallClock()).get()
    }

    /// `export features` as text per user.
    func features(_ harness: Harness, _ config: String) throws -> [String: String] {
        let (status, text) = try Processes.run(harness.bin, ["export", "features", "--config", config, "--window", "30", "--window", "3650"])
        try #require(status == 0)
        return Dictionary(uniqueKeysWithValues: text.split(separator: "\n").map { line in
            let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return (object["user_id"] as! String, String(line))
        })
    }

    /// Each exported line equals the features of the user's distinct events, as of the export's `as_of`.
    func expectFeatures(_ exported: [String: String], of lines: [ProducedLog.Line]) throws {
        let events = try lines.map { try decode($0.payload, topic: $0.topic) }
        let catalog = try SegmenterConfig.parse(yaml: Self.yaml, source: "test", environment: [:]).catalog
        let truth = FromScratch(events, catalog: catalog, now: Instant(nanoseconds: 0), calendar: .utc)
        #expect(Set(exported.keys) == Set(truth.profiles.keys))
        var wrong: [String] = []
        for (user, line) in exported {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let now = try RFC3339.parse(object["as_of"] as! String).get()
            let state = StateReader.UserState(userID: user, partition: 0, profile: truth.profiles[user] ?? UserProfile(),
                                              days: truth.days[user] ?? [:])
            let expected = FeatureExport.json(state, now: now, calendar: .utc, windows: [30, 3650], metrics: catalog.metrics)
            if expected != line { wrong.append("\(user): exported \(line), expected \(expected)") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) users differ: \(wrong.prefix(2))")
    }

    /// The dead letters by source coordinates ("topic/partition/offset") → the whole letter.
    func deadLetters(_ harness: Harness) throws -> [String: String] {
        var letters: [String: String] = [:]
        for object in try harness.readTopic("segmenter-dlq") {
            let text = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            letters["\(object["source_topic"]!)/\(object["partition"]!)/\(object["offset"]!)"] = text
        }
        return letters
    }

    /// Every message of the input topics, per partition, in offset order (read with kcat).
    func inputMessages(_ harness: Harness) throws -> [TopicPartitionKey: [(offset: Int64, payload: String)]] {
        var result: [TopicPartitionKey: [(offset: Int64, payload: String)]] = [:]
        for topic in ["activity", "billing"] {
            let (status, text) = try Processes.run(harness.kcat, ["-b", harness.bootstrap, "-C", "-t", topic, "-e", "-q",
                                                                 "-f", "%p %o %s\\n"])
            try #require(status == 0)
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 2)
                guard parts.count == 3, let partition = Int32(parts[0]), let offset = Int64(parts[1]) else { continue }
                result[TopicPartitionKey(topic: topic, partition: partition), default: []].append((offset, String(parts[2])))
            }
        }
        return result.mapValues { $0.sorted { $0.offset < $1.offset } }
    }

    struct TopicPartitionKey: Hashable, CustomStringConvertible {
        let topic: String
        let partition: Int32
        var description: String { "\(topic)[\(partition)]" }
    }
}
