import Foundation
import Testing
import SegmenterCore
import SegmenterService
import ServiceConfig
import SegmenterStore

/// Metrics as a user meets them (SPEC §4b), separate processes against a real broker: `explain`
/// and `export features` show each metric's value as a recomputation from the input says; a
/// metric added later starts empty and `validate` and `run` say so; `rebuild` re-derives it.
@Suite(.serialized) struct MetricsEndToEndTests {
    static let metrics = """
        metrics:
          - name: logins
            count: type = 'login'
          - name: features_used
            count_distinct: prop.feature
          - name: abandoned_checkouts
            sequence: {first: type = 'checkout_started', then_not: type = 'purchase', within: 24h}
        """
    static let segments = """
        segments:
          - name: frequent_logins
            rule: logins(7d) >= 3
          - name: abandoners
            rule: abandoned_checkouts(3d) >= 1
        kpi_emit_interval: 200ms
        """
    static let added = """
          - name: pro_purchases
            count: type = 'purchase' and prop.plan = 'pro'
        """

    func decode(_ line: ProducedLog.Line) throws -> UserEvent {
        try EventDecoder(currency: "USD", fxRates: ["EUR": ExchangeRate("1.08")!])
            .decode(Array(line.payload.utf8), from: line.topic == "billing" ? .billing : .activity, wallClock: Instant.wallClock()).get()
    }

    /// `export features` lines per user, as JSON objects.
    func exported(_ harness: Harness, _ config: String) throws -> [String: [String: Any]] {
        let (status, text) = try Processes.run(harness.bin, ["export", "features", "--config", config, "--window", "7"])
        try #require(status == 0, "\(text)")
        return Dictionary(uniqueKeysWithValues: text.split(separator: "\n").map { line in
            let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return (object["user_id"] as! String, object)
        })
    }

    /// Each exported metric field equals the recomputation's value for the user at the export's `as_of`.
    func expectMetricFields(_ exported: [String: [String: Any]], events: [UserEvent], catalog: SegmentCatalog) throws -> Int {
        let truth = FromScratch(events, catalog: catalog, now: Instant(nanoseconds: 0), calendar: .utc)
        var wrong: [String] = []
        var nonZero = 0
        for (user, object) in exported {
            let now = try RFC3339.parse(object["as_of"] as! String).get()
            let evaluator = FeatureEvaluator(profile: truth.profiles[user] ?? UserProfile(), days: [:], now: now, calendar: .utc)
            for metric in catalog.metrics.metrics {
                for feature in [Feature.metric(metric.ref, .days(7)), .metric(metric.ref, .lifetime), .hoursSinceLast(metric.ref)] {
                    let want = evaluator.value(of: feature)
                    let got = object[feature.description]
                    let same = switch want {
                    case .null: got is NSNull
                    case let .number(n): (got as? NSNumber).map { abs($0.doubleValue - n) < 1e-9 } ?? false
                    default: false
                    }
                    if !same { wrong.append("\(user) \(feature): exported \(got ?? "missing"), expected \(want.json)") }
                    if case let .number(n) = want, n > 0, feature.description.hasSuffix("(lifetime)") { nonZero += 1 }
                }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) metric values differ: \(wrong.prefix(3))")
        return nonZero
    }

    @Test func metricsShowAsRecomputedAndANewOneStartsEmptyUntilRebuilt() throws {
        // Given the service has consumed 20 days of events with properties and checkouts
        let harness = try Harness()
        let produced = try harness.generate(["--users", "200", "--events", "8000", "--seed", "57"] + Harness.recent(days: 20))
        let config = try harness.writeConfig(batch: 500, extra: Self.metrics + "\n" + Self.segments)
        try harness.runToCompletion(config: config, total: produced.total)
        let events = try produced.lines.filter { $0.valid && !$0.duplicate }.map(decode)
        let catalog = try SegmenterConfig.parse(yaml: Self.metrics + "\n" + Self.segments, source: "t", environment: [:]).catalog

        // Then export shows every metric as a recomputation from the input
        #expect(try expectMetricFields(try exported(harness, config), events: events, catalog: catalog) > 100)

        // and explain shows a user's metrics: the definition as parsed, values, open instances
        let abandoner = try #require(try harness.readTopic("segment-membership")
            .first { $0["segment"] as? String == "abandoners" && $0["cause"] as? String == "time" }?["user_id"] as? String)
        let (status, text) = try Processes.run(harness.bin, ["explain", abandoner, "--config", config, "--json"])
        try #require(status == 0, "\(text)")
        let explanation = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        let shown = explanation["metrics"] as! [[String: Any]]
        #expect(shown.map { $0["name"] as? String } == ["logins", "abandoned_checkouts"], "\(shown)")
        #expect(shown.last?["definition"] as? String == "sequence: first: (type = 'checkout_started') then_not: (type = 'purchase') within: 1d")
        let (_, lines) = try Processes.run(harness.bin, ["explain", abandoner, "--config", config])
        #expect(lines.contains("metrics (as their filters parsed):") && lines.contains("abandoned_checkouts(3d) = "), "\(lines)")

        // When a metric is added to the config of a state built without it
        let widened = harness.work.appendingPathComponent("widened.yaml").path
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "metrics:\n", with: "metrics:\n" + Self.added + "\n")
            .write(toFile: widened, atomically: true, encoding: .utf8)
        // Then validate says it starts empty and names rebuild
        let (valid, said) = try Processes.run(harness.bin, ["validate", "--config", widened])
        #expect(valid == 0 && said.contains("note: metric pro_purchases is new or changed") && said.contains("segmenter rebuild"), "\(said)")
        #expect(!said.contains("metric logins is new"), "\(said)")
        // and run says so too, and counts nothing from before
        try harness.runToCompletion(config: widened, total: produced.total)
        let runLogs = try FileManager.default.contentsOfDirectory(atPath: harness.work.path).filter { $0.hasPrefix("run-") }
            .map { try String(contentsOfFile: harness.work.appendingPathComponent($0).path, encoding: .utf8) }.joined()
        #expect(runLogs.contains("metric pro_purchases is new or changed since the state was built"), "no log line")
        let before = try exported(harness, widened)
        #expect(before.values.allSatisfy { ($0["pro_purchases(lifetime)"] as? NSNumber)?.intValue == 0 })

        // When rebuilt from the input Kafka still holds
        let (rebuilt, output) = try Processes.run(harness.bin, ["rebuild", "--config", widened, "--from-earliest"])
        try #require(rebuilt == 0, "rebuild failed: \(output)")
        // Then the new metric is as a recomputation says, and validate has nothing to say of it
        let widenedCatalog = try SegmenterConfig.parse(yaml: String(contentsOfFile: widened, encoding: .utf8), source: "t", environment: [:]).catalog
        #expect(try expectMetricFields(try exported(harness, widened), events: events, catalog: widenedCatalog) > 100)
        let (_, again) = try Processes.run(harness.bin, ["validate", "--config", widened])
        #expect(!again.contains("is new or changed"), "\(again)")
    }
}
