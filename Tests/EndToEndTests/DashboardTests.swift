import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SegmenterCore
import Testing

/// The dashboard in a real browser (Debian's chromium, headless) against a running
/// `segmenter run`, and secrets that must never show: not in logs, the API, metrics or the page.
@Suite(.serialized) struct DashboardTests {
    static let kafkaSecret = "kafka-pw-\(UUID().uuidString.prefix(8))"
    static let warehouseSecret = "wh-pw-\(UUID().uuidString.prefix(8))"

    static var chromium: String? { Processes.which("chromium") ?? Processes.which("chromium-browser") }

    func fetch(_ url: String, method: String = "GET") async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.timeoutInterval = 60
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    @Test func dashboardRendersLiveStateAndSecretsNeverShow() async throws {
        let browser = try #require(Self.chromium, "chromium is not installed: run the tests through scripts/test, which installs it")
        let harness = try Harness()
        let produced = try harness.generate(["--users", "150", "--events", "4000", "--seed", "5"])
        let port = Processes.freePort()
        let config = harness.work.appendingPathComponent("secrets.yaml").path
        try """
        kafka:
          bootstrap.servers: \(harness.bootstrap)
          group.id: e2e-dashboard
          sasl.username: segmenter
          sasl.password: ${E2E_KAFKA_SECRET}
        state_dir: \(harness.work.appendingPathComponent("state").path)
        segments:
          - {name: big_spenders, rule: "spend(30d) > 500"}
          - {name: inactive_new_users, rule: "hours_since_signup >= 24 and activities_since_signup = 0"}
        kpis:
          - {name: spend_30d, sum: "spend(30d)"}
        kpi_emit_interval: 200ms
        http:
          port: \(port)
        reconciliation:
          warehouse: {type: postgres, host: 127.0.0.1, port: 1, user: segmenter, password: "${E2E_WAREHOUSE_SECRET}", tls: disable, connect_timeout: 1s}
          daily_sql: SELECT user_id, day, spend, activities, active_seconds FROM daily
          retries: 0
        """.write(toFile: config, atomically: true, encoding: .utf8)
        // Every command reading this config (run, and inspect below) needs the secrets.
        setenv("E2E_KAFKA_SECRET", Self.kafkaSecret, 1)
        setenv("E2E_WAREHOUSE_SECRET", Self.warehouseSecret, 1)
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        let base = "http://127.0.0.1:\(port)"
        let deadline = Date().addingTimeInterval(90)
        while harness.committedOffsets(config: config) < produced.total, Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(harness.committedOffsets(config: config) == produced.total, "\(run.output.suffix(2000))")

        // A reconciliation against an unreachable warehouse: reported failed, with the cause.
        let (status, report) = try await fetch("\(base)/api/reconciliation/run", method: "POST")
        #expect(status == 502 && report.contains("\"status\":\"failed\"") && report.contains("connection"), "\(report)")
        // Streaming is unaffected: a new event after the failed run is consumed and committed.
        try harness.produce(topic: "billing", key: "u1", payload: #"{"event_id":"after-failed-reconciliation","user_id":"u1","type":"charge","ts":"\#(Instant.wallClock())","amount":5,"currency":"USD"}"#)
        let more = Date().addingTimeInterval(30)
        while harness.committedOffsets(config: config) < produced.total + 1, Date() < more { try await Task.sleep(for: .milliseconds(200)) }
        #expect(harness.committedOffsets(config: config) == produced.total + 1)
        // A few sparkline samples: `all`'s member count has at least three in /api/history.
        let sampled = await eventually(timeout: 30) {
            let history = try? JSONSerialization.jsonObject(with: Data(Curl.get("\(base)/api/history").1.utf8)) as? [String: [String: [Any]]]
            return (history?["all"]?["members"]?.count ?? 0) >= 3
        }
        #expect(sampled, "no sparkline samples: \(Curl.get("\(base)/api/history").1.prefix(400))")

        let screenshot = harness.work.appendingPathComponent("dashboard.png").path
        let (shotStatus, _) = try Processes.run(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                                          "--virtual-time-budget=6000", "--window-size=1280,1000", "--screenshot=\(screenshot)", base + "/"])
        #expect(shotStatus == 0 && FileManager.default.fileExists(atPath: screenshot))
        try? FileManager.default.removeItem(atPath: "/tmp/segmenter-dashboard.png")
        try? FileManager.default.copyItem(atPath: screenshot, toPath: "/tmp/segmenter-dashboard.png")
        let (domStatus, dom) = try Processes.run(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=6000",
                                                           "--dump-dom", base + "/"])
        #expect(domStatus == 0)
        // Rendered by the page's script from the live API: segment names, the member count of
        // `all`, the consumed total, the failed reconciliation.
        for text in ["big_spenders", "inactive_new_users", "spend_30d", "<span>150</span>", "failed"] {
            #expect(dom.contains(text), "\(text) not on the page")
        }
        #expect(dom.contains("<b>\((produced.total + 1).formatted(.number.locale(Locale(identifier: "en_US"))))</b>"), "consumed total not on the page")
        #expect(dom.contains("<polyline"), "no sparkline drawn")
        // A user id links to the explanation: each segment's rule with every sub-expression's value.
        let (explainStatus, explained) = try Processes.run(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=6000",
                                                                     "--dump-dom", base + "/#explain=u1"])
        #expect(explainStatus == 0)
        for text in ["big_spenders</h3>", "spend(30d) &gt; 500 → <b>", "hours_since_signup &gt;= 24 → <b>", "next change by time"] {
            #expect(explained.contains(text), "\(text) not in the explanation")
        }

        // Secrets: nowhere a user or an operator can see.
        let (_, segments) = try await fetch("\(base)/api/segments")
        let (_, reconciliation) = try await fetch("\(base)/api/reconciliation")
        let (_, metrics) = try await fetch("\(base)/metrics")
        run.kill(SIGTERM)
        #expect(run.wait(seconds: 30) == 0, "\(run.output.suffix(2000))")
        for (place, text) in [("logs", run.output), ("/api/segments", segments), ("/api/reconciliation", reconciliation),
                              ("/metrics", metrics), ("dashboard", dom)] {
            #expect(!text.contains(Self.kafkaSecret) && !text.contains(Self.warehouseSecret), "a secret appears in \(place)")
        }
        #expect(run.output.contains("reconciliation failed"), "the failure is logged")
    }
}
