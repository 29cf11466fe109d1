import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SegmenterCore
import SegmenterStore
import Testing
import SQLite

/// Reconciliation inside a running `segmenter run` (the commit thread's store access), asked
/// for by `segmenter reconcile --once` through the service's HTTP API, with its corrections
/// published to Kafka with cause `reconciliation`.
@Suite(.serialized) struct ReconcileServiceTests {
    /// Per user and UTC day sums of the valid, distinct events of a produced log, decoded with
    /// the service's own rules (fx, rounding, dedupe: the first copy wins).
    static func truth(_ produced: ProducedLog) -> [String: [DayNumber: DayAggregate]] {
        let decoder = EventDecoder(currency: "USD", fxRates: ["EUR": ExchangeRate("1.08")!])
        var seen: Set<String> = []
        var days: [String: [DayNumber: DayAggregate]] = [:]
        for line in produced.lines where line.valid {
            guard case let .success(event) = decoder.decode(Array(line.payload.utf8), from: line.topic == "billing" ? .billing : .activity,
                                                           wallClock: Instant.wallClock()),
                  seen.insert(event.userID + "\u{0}" + event.eventID).inserted else { continue }
            let day = DayCalendar.utc.day(of: event.ts)
            switch event.body {
            case let .activity(_, micros): days[event.userID, default: [:]][day, default: DayAggregate()] += DayAggregate(activities: 1, activeMicros: micros)
            case let .billing(cents): days[event.userID, default: [:]][day, default: DayAggregate()] += DayAggregate(spendCents: cents)
            default: break
            }
        }
        return days
    }

    static func writeWarehouse(_ days: [String: [DayNumber: DayAggregate]], to path: String) throws {
        let db = try SQLiteConnection(path: path)
        try db.execute("CREATE TABLE daily (user_id TEXT, day TEXT, spend REAL, activities INTEGER, active_seconds REAL)")
        try db.transaction {
            let insert = try db.prepare("INSERT INTO daily VALUES (?, ?, CAST(? AS REAL), ?, CAST(? AS REAL))")
            for (user, perDay) in days {
                for (day, sums) in perDay {
                    insert.reset()
                    insert.bind(1, user)
                    insert.bind(2, DayCalendar.isoDate(day))
                    insert.bind(3, Money.format(cents: sums.spendCents))
                    insert.bind(4, sums.activities)
                    insert.bind(5, String(format: "%.6f", Double(sums.activeMicros) / 1e6))
                    try insert.run()
                }
            }
        }
    }

    @Test func reconcileOnceAsksTheRunningServiceAndPublishesCorrections() async throws {
        let harness = try Harness()
        let produced = try harness.generate(["--users", "150", "--events", "4000", "--seed", "8"])
        // The warehouse: the same events, plus a $250 refund the billing topic never carried,
        // ten days before the last day (closed).
        var days = Self.truth(produced)
        let lastDay = days.values.flatMap(\.keys).max()!
        let refunded = days.keys.sorted()[0]
        days[refunded, default: [:]][lastDay - 10, default: DayAggregate()].spendCents -= 25_000
        let warehouse = harness.work.appendingPathComponent("warehouse.sqlite").path
        try Self.writeWarehouse(days, to: warehouse)

        let port = Processes.freePort()
        let config = try harness.writeConfig(batch: 500, extra: """
            segments:
              - {name: spenders, rule: "spend(30d) > 0"}
            kpis:
              - {name: spend_30d, sum: "spend(30d)"}
            alerts:
              - {name: spend_negative, segment: all, kpi: spend_30d, threshold: "< 0"}
            kpi_emit_interval: 200ms
            http:
              port: \(port)
            reconciliation:
              warehouse: {type: sqlite, path: \(warehouse)}
              daily_sql: SELECT user_id, day, spend, activities, active_seconds FROM daily
              lookback: 35d
              lag: 1h
              partitioner: consistent_random
            """)
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        let deadline = Date().addingTimeInterval(90)
        while harness.committedOffsets(config: config) < produced.total, Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(harness.committedOffsets(config: config) == produced.total)
        // A KPI emit after the last batch: what is published is the state's.
        let emitted = harness.waitUntilKPIsPublished(config: config, apiBase: "http://127.0.0.1:\(port)")
        #expect(emitted, "the KPIs of the ingested input were never published: \(run.output.suffix(1500))")

        // `run` holds the state: the CLI asks it over HTTP.
        let (status, output) = try Processes.run(harness.bin, ["reconcile", "--once", "--config", config, "--json"])
        #expect(status == 0, "\(output)\n\(run.output.suffix(2000))")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
        #expect(report["status"] as? String == "succeeded")
        #expect(report["daysDiffering"] as? [String] == [DayCalendar.isoDate(lastDay - 10)], "\(report)")
        #expect(report["userDaysCorrected"] as? Int == 1)
        #expect((report["spendCents"] as? [String: Any])?["absolute"] as? Int == 25_000)

        // The KPI delta it caused, on Kafka, with its cause (published at the next KPI emit, relayed
        // from the outbox: allow a loaded machine some seconds).
        var deltas: [[String: Any]] = []
        for _ in 0..<40 where deltas.isEmpty {
            try await Task.sleep(for: .milliseconds(250))
            deltas = try harness.readTopic("segment-kpi-deltas").filter {
                $0["cause"] as? String == "reconciliation" && $0["segment"] as? String == "all" && $0["kpi"] as? String == "spend_30d"
            }
        }
        #expect(deltas.count == 1 && (deltas.first?["delta"] as? NSNumber)?.doubleValue == -250, "\(deltas)")

        let (againStatus, again) = try Processes.run(harness.bin, ["reconcile", "--once", "--config", config, "--json"])
        #expect(againStatus == 0 && again.contains("\"daysDiffering\":[]") && again.contains("\"userDaysCorrected\":0"), "\(again)")
        let (_, history) = try Processes.run(harness.bin, ["inspect", "reconciliation", "--config", config])
        #expect(history.components(separatedBy: "once attempt 1  succeeded").count - 1 == 2, "\(history)")

        // Every metric the shipped Grafana dashboard queries is one this service exports (here it
        // has ingested, published KPIs and alerts, and reconciled).
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        let exported = Set(String(decoding: data, as: UTF8.self).split(separator: "\n").filter { !$0.hasPrefix("#") }
            .compactMap { $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init) })
        let queried = try Self.dashboardMetricNames()
        #expect(queried.count >= 10, "\(queried)")
        for name in queried.sorted() { #expect(exported.contains(name), "the dashboard queries \(name), which /metrics does not export") }
    }

    /// The metric names in the PromQL of `config/grafana/dashboards/segmenter.json` (panels and
    /// template variables).
    static func dashboardMetricNames() throws -> Set<String> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("config/grafana/dashboards/segmenter.json")))
        let dashboard = try #require(json as? [String: Any])
        var queries = (dashboard["panels"] as? [[String: Any]] ?? []).flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        queries += ((dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []).compactMap { $0["query"] as? String }
        let pattern = try NSRegularExpression(pattern: "segmenter_[a-z_]+")
        return Set(queries.flatMap { query in
            pattern.matches(in: query, range: NSRange(query.startIndex..., in: query)).map { String(query[Range($0.range, in: query)!]) }
        })
    }
}
