import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import SegmenterCore
import SQLite

/// Prometheus for real (issue 26, item 4): Debian's `prometheus` scrapes a running `run`; every
/// PromQL expression of the Grafana dashboard returns data, every alert rule of
/// `config/prometheus/alerts.yml` evaluates healthy with each metric it reads exported, and
/// `promtool check rules` accepts the file.
@Suite(.serialized) struct PrometheusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Once out of the default run (it failed twice under the full suite's load): the cause was
    /// the test's ports, taken from the kernel's ephemeral range, where any outgoing connection
    /// can take one first (`Processes.freePort` now hands out ports below it), and a `run` that
    /// had not consumed its input was not noticed (now required).
    @Test
    func theDashboardsQueriesAndTheAlertRulesWorkAgainstARealPrometheus() async throws {
        let prometheus = "/usr/bin/prometheus", promtool = "/usr/bin/promtool"
        try #require(FileManager.default.isExecutableFile(atPath: prometheus), "Debian's prometheus is missing: scripts/install-deps --test installs it")
        let rules = Self.root.appendingPathComponent("config/prometheus/alerts.yml").path
        let (checked, checkOutput) = try Processes.run(promtool, ["check", "rules", rules])
        #expect(checked == 0, "\(checkOutput)")

        // Given a running segmenter with segments, KPIs, an alert and reconciliation, fed some input
        let harness = try Harness()
        let warehouse = harness.work.appendingPathComponent("warehouse.sqlite").path
        try SQLiteConnection(path: warehouse).execute("CREATE TABLE daily (user_id TEXT, day TEXT, spend REAL, activities INTEGER, active_seconds REAL)")
        let port = Processes.freePort()
        let config = try harness.writeConfig(batch: 200, extra: """
            segments:
              - {name: spenders, rule: "spend(30d) > 50"}
            kpis:
              - {name: spend, sum: "spend(30d)"}
            alerts:
              - {name: spend_drop, segment: all, kpi: spend, drop: 50%, baseline_days: 3}
            reconciliation:
              warehouse: {type: sqlite, path: \(warehouse)}
              daily_sql: SELECT user_id, day, spend, activities, active_seconds FROM daily
              retries: 0
            http:
              port: \(port)
            """)
        let produced = try harness.generate(Harness.recent(days: 10) + ["--users", "60", "--events", "1500", "--seed", "81"])
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        _ = await eventually(timeout: 90) { harness.committedOffsets(config: config) >= produced.total }
        try #require(harness.committedOffsets(config: config) >= produced.total, "run consumed its input; log: \(run.output.suffix(1500))")
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/api/reconciliation/run")!)
        request.httpMethod = "POST"
        _ = try await URLSession.shared.data(for: request)

        // And Prometheus scraping it every 2 s, with the rules loaded. (A scrape may take as long
        // as the interval: on a loaded machine a 1 s timeout failed scrapes, and a failed scrape
        // marks every series stale, so instant queries came back empty.)
        let promPort = Processes.freePort()
        let promConfig = harness.work.appendingPathComponent("prometheus.yml")
        try """
            global: {scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 2s}
            rule_files: [\(rules)]
            scrape_configs:
              - job_name: segmenter
                static_configs: [{targets: ['127.0.0.1:\(port)']}]
            """.write(to: promConfig, atomically: true, encoding: .utf8)
        let server = try Processes.Running(prometheus, ["--config.file=\(promConfig.path)", "--storage.tsdb.path=\(harness.work.appendingPathComponent("tsdb").path)",
                                                        "--web.listen-address=127.0.0.1:\(promPort)"],
                                           log: harness.work.appendingPathComponent("prometheus.log"))
        defer { server.kill(SIGTERM); _ = server.wait(seconds: 10) }

        /// Failed queries (no answer, an error), per expression: a failure is "not yet", never "no data".
        var failures: [String: String] = [:]
        /// Asked with curl, each on its own connection with its own time limit: through the test
        /// process's shared URLSession a query could wait behind other tests' long requests and
        /// fail, and that read as "no data" (seen: a series Prometheus held throughout, "empty").
        func query(_ expression: String) async -> [[String: Any]]? {
            guard let (status, text) = try? Processes.run("/usr/bin/curl", ["-sS", "-m", "20", "--get", "--data-urlencode", "query=\(expression)",
                                                                              "http://127.0.0.1:\(promPort)/api/v1/query"], stderr: true),
                  status == 0, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                  object["status"] as? String == "success" else {
                failures[expression] = "query failed"
                return nil
            }
            failures[expression] = nil
            return ((object["data"] as? [String: Any])?["result"] as? [[String: Any]])
        }

        // Then every expression of the dashboard returns data (rates need two scrapes: waited for)
        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.root.appendingPathComponent("config/grafana/dashboards/segmenter.json")))
        var expressions: [String] = []
        func collect(_ node: Any) {
            if let object = node as? [String: Any] {
                if let expr = object["expr"] as? String { expressions.append(expr.replacingOccurrences(of: "$segment", with: ".*")) }
                object.values.forEach(collect)
            } else if let array = node as? [Any] {
                array.forEach(collect)
            }
        }
        collect(dashboard)
        #expect(expressions.count >= 10)
        var empty = Set(expressions)
        _ = await eventually(timeout: 180, interval: .seconds(1)) {
            // Evaluated over the last minutes (a subquery), so a failed scrape's staleness at
            // one instant does not hide an expression that returns data.
            for expression in empty where !(await query("last_over_time((\(expression))[5m:2s])") ?? []).isEmpty { empty.remove(expression) }
            return empty.isEmpty
        }
        if !empty.isEmpty {
            // What Prometheus made of the target: up, its last error and scrape duration.
            let targets = (try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(promPort)/api/v1/targets")!)).map { String(decoding: $0.0, as: UTF8.self) } ?? "?"
            // And what the service itself exports and knows of its KPIs right now.
            let (_, exported) = (try? Processes.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/metrics"])) ?? (0, "")
            let (_, ingest) = (try? Processes.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/api/ingest"])) ?? (0, "")
            let (_, segments) = (try? Processes.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/api/segments"])) ?? (0, "")
            Issue.record("""
                no data for: \(empty.sorted()); failed queries: \(failures); targets: \(targets.prefix(1500)); \
                exported now: \(exported.split(separator: "\n").filter { line in !line.hasPrefix("#") && empty.contains { $0.contains(line.prefix { $0 != "{" && $0 != " " }) } }.prefix(20)); \
                /api/ingest: \(ingest.prefix(1500)); /api/segments: \(segments.prefix(800)); \
                run log: \(run.output.split(separator: "\n").filter { !$0.contains("reconciliation: day") }.suffix(30).joined(separator: "\n")); \
                prometheus: \(server.output.suffix(1000))
                """)
        }

        // And every alert rule is healthy, and each metric it reads is exported
        let rulesText = try String(contentsOfFile: rules, encoding: .utf8)
        let metricNames = Set(rulesText.split(whereSeparator: { !($0.isLetter || $0 == "_") }).map(String.init).filter { $0.hasPrefix("segmenter_") })
        #expect(metricNames.count >= 6, "\(metricNames)")
        for name in metricNames.sorted() {
            // Over the last minutes, so one failed scrape's staleness cannot hide a series.
            let exported = await eventually(timeout: 30, interval: .seconds(1)) { !(await query("count(last_over_time(\(name)[5m])) > 0") ?? []).isEmpty }
            #expect(exported, "\(name) is not exported (\(failures))")
        }
        var healthy: [String: String] = [:]
        _ = await eventually(timeout: 90, interval: .seconds(1)) {
            if let (status, text) = try? Processes.run("/usr/bin/curl", ["-sS", "-m", "20", "http://127.0.0.1:\(promPort)/api/v1/rules"]), status == 0,
               let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
               let groups = (object["data"] as? [String: Any])?["groups"] as? [[String: Any]] {
                for rule in groups.flatMap({ $0["rules"] as? [[String: Any]] ?? [] }) {
                    healthy[rule["name"] as? String ?? "?"] = rule["health"] as? String
                }
            }
            return healthy.count >= 6 && healthy.values.allSatisfy { $0 == "ok" }
        }
        #expect(healthy.count == 6 && healthy.values.allSatisfy { $0 == "ok" }, "\(healthy)")
    }
}
