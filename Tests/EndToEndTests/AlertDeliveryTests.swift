import Crypto
import Foundation
import Testing

/// Alert delivery (issue 26, item 1): a running `run` sends each alert state change to Debian's
/// Alertmanager and to a webhook, signed, retried across a restart, dead-lettered when nobody
/// takes it, without holding ingest up.
@Suite(.serialized) struct AlertDeliveryTests {
    static let secret = "webhook-secret-0123456789"

    /// An alert on the members of "active in the last day": three users active on one day fire
    /// it; three days later (profile updates only, no activity) they have left and it resolves.
    static func config(deliver: String) -> String {
        """
        alerts:
          rules:
            - {name: busy_day, segment: active_today, kpi: members, threshold: "> 2", severity: critical}
          deliver:
        \(deliver.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        segments:
          - {name: active_today, rule: "activities(1d) >= 1"}
        kpi_emit_interval: 200ms
        """
    }

    static func fire(_ harness: Harness) throws {
        try harness.produce(topic: "activity", messages: ["a", "b", "c"].map { user in
            (user, #"{"event_id":"busy-\#(user)","user_id":"\#(user)","type":"session","ts":"2026-11-02T10:00:00Z"}"#)
        })
    }

    static func resolve(_ harness: Harness) throws {
        try harness.produce(topic: "activity", messages: (0..<20).map { n in
            ("z\(n)", #"{"event_id":"later-\#(n)","user_id":"z\#(n)","type":"profile","attributes":{"plan":"free"},"ts":"2026-11-05T10:00:00Z"}"#)
        })
    }

    static func waitForAlert(_ harness: Harness, state: String, run: Processes.Running) throws {
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            if try harness.readTopic("segment-alerts").contains(where: { $0["state"] as? String == state }) { return }
            Thread.sleep(forTimeInterval: 0.3)
        }
        Issue.record("no \(state) alert on the topic; run log: \(run.output.suffix(2000))")
        throw CancellationError()
    }

    @Test func alertmanagerShowsTheAlertFiringThenResolved() throws {
        let alertmanager = "/usr/bin/prometheus-alertmanager"
        try #require(FileManager.default.isExecutableFile(atPath: alertmanager),
                     "Debian's prometheus-alertmanager is missing: scripts/install-deps --test installs it")
        let harness = try Harness()
        // Alertmanager's own notifications go to a receiver, so "resolved" is seen as it tells it.
        let receiver = try WebhookReceiver(harness)
        defer { receiver.stop() }
        let amPort = Processes.freePort()
        let amConfig = harness.work.appendingPathComponent("alertmanager.yml")
        try """
            route: {receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
            receivers:
              - name: hook
                webhook_configs: [{url: "http://127.0.0.1:\(receiver.port)/am", send_resolved: true}]
            """.write(to: amConfig, atomically: true, encoding: .utf8)
        let am = try Processes.Running(alertmanager, ["--config.file=\(amConfig.path)", "--storage.path=\(harness.work.appendingPathComponent("am").path)",
                                                      "--web.listen-address=127.0.0.1:\(amPort)", "--cluster.listen-address="],
                                       log: harness.work.appendingPathComponent("alertmanager.log"))
        defer { am.kill(SIGKILL) }
        let httpPort = Processes.freePort()
        let config = try harness.writeConfig(batch: 50, extra: Self.config(deliver: "alertmanager: {url: \"http://127.0.0.1:\(amPort)\"}\nresend_interval: 1s")
                                             + "\nhttp: {port: \(httpPort)}")
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }

        // When three users are active on one day, Alertmanager holds the alert active, labelled
        // and annotated as configured
        try Self.fire(harness)
        try Self.waitForAlert(harness, state: "firing", run: run)
        var active: [String: Any]?
        let deadline = Date().addingTimeInterval(30)
        while active == nil, Date() < deadline {
            active = Self.alertmanagerAlerts(port: amPort).first { ($0["labels"] as? [String: String])?["alertname"] == "busy_day" }
            if active == nil { Thread.sleep(forTimeInterval: 0.3) }
        }
        let alert = try #require(active, "Alertmanager never listed busy_day; run log: \(run.output.suffix(1500)); alertmanager: \(am.output.suffix(1000))")
        #expect(alert["labels"] as? [String: String] == ["alertname": "busy_day", "segment": "active_today", "kpi": "members", "severity": "critical"])
        #expect((alert["status"] as? [String: Any])?["state"] as? String == "active")
        let annotations = alert["annotations"] as? [String: String] ?? [:]
        #expect(annotations["value"] == "3" && annotations["threshold"] == "2", "\(annotations)")
        #expect(annotations["dashboard"] == "http://127.0.0.1:\(httpPort)/#chart=active_today")
        #expect((alert["startsAt"] as? String)?.hasPrefix("2026-11-02") == true, "starts when it fired in event time: \(alert)")
        try receiver.waitFor(path: "/am", timeout: 30) { Self.amNotification($0) == "firing" }
        // While it fires it is sent again (Alertmanager moves its end past each send)
        let firstEnd = alert["endsAt"] as? String ?? ""
        var resent = false
        let resendDeadline = Date().addingTimeInterval(30)
        while !resent, Date() < resendDeadline {
            Thread.sleep(forTimeInterval: 0.5)
            resent = Self.alertmanagerAlerts(port: amPort).contains {
                ($0["labels"] as? [String: String])?["alertname"] == "busy_day" && ($0["endsAt"] as? String ?? "") > firstEnd
            }
        }
        #expect(resent, "a firing alert is re-sent every resend_interval")

        // Then, once they left the segment, Alertmanager resolves it and tells its receivers so
        try Self.resolve(harness)
        try Self.waitForAlert(harness, state: "resolved", run: run)
        try receiver.waitFor(path: "/am", timeout: 30) { Self.amNotification($0) == "resolved" }
        #expect(!Self.alertmanagerAlerts(port: amPort).contains { ($0["labels"] as? [String: String])?["alertname"] == "busy_day" },
                "a resolved alert is no longer active in Alertmanager")
        let (_, inspect) = try Processes.run(harness.bin, ["inspect", "alerts", "--config", config])
        #expect(inspect.contains("alertmanager: 2 delivered, 0 failed tries, 0 dead-lettered"), "\(inspect)")
    }

    @Test func aWebhookGetsOneSignedBodyPerChangeRetriedAcrossARestart() throws {
        let harness = try Harness()
        let receiver = try WebhookReceiver(harness)
        defer { receiver.stop() }
        let config = try harness.writeConfig(batch: 50, extra: Self.webhookConfig(port: receiver.port, maxAttempts: 100))
        // Given a webhook that fails every try for now
        receiver.answer(503)
        var run = try Self.start(harness, config: config, log: "run.log")
        defer { run.kill(SIGKILL) }
        try Self.fire(harness)
        try receiver.waitFor(path: "/hook", timeout: 60) { $0.count >= 2 }
        // Ingest goes on meanwhile: the resolution is published while the firing is still retried
        try Self.resolve(harness)
        try Self.waitForAlert(harness, state: "resolved", run: run)
        #expect(receiver.requests(path: "/hook").allSatisfy { $0.status == 503 })

        // When the service is killed mid-retry, the receiver recovers, and the service restarts
        run.kill(SIGKILL)
        run.wait(seconds: 10)
        receiver.answer(200)
        run = try Self.start(harness, config: config, log: "run2.log")
        try receiver.waitFor(path: "/hook", timeout: 60) { requests in requests.filter { $0.status == 200 }.count >= 2 }

        // Then each change was taken once, in order, each try signed over its exact body
        let requests = receiver.requests(path: "/hook")
        for request in requests {
            #expect(request.headers["x-segmenter-signature"] == Self.signature(request.body), "signature of \(request.body)")
        }
        let taken = requests.filter { $0.status == 200 }
        #expect(taken.map { $0.json["state"] as? String } == ["firing", "resolved"])
        #expect(taken.map { $0.json["severity"] as? String } == ["critical", "critical"])
        #expect(taken.first?.json["value"] as? Double == 3)
        // Every try of the firing change names the same change, across the restart
        let firingID = try #require(taken.first?.headers["x-segmenter-delivery"])
        #expect(requests.filter { $0.json["state"] as? String == "firing" }.allSatisfy { $0.headers["x-segmenter-delivery"] == firingID })
        #expect(requests.filter { $0.status == 503 }.count >= 2)
        let (_, inspect) = try Processes.run(harness.bin, ["inspect", "alerts", "--config", config],
                                            environment: ["SEGMENTER_WEBHOOK_SECRET": Self.secret])
        #expect(inspect.contains("webhook: 2 delivered"), "\(inspect)")
    }

    @Test func aChangeNoReceiverTakesIsDeadLetteredAndCounted() throws {
        let harness = try Harness()
        let receiver = try WebhookReceiver(harness)
        defer { receiver.stop() }
        let port = Processes.freePort()
        let config = try harness.writeConfig(batch: 50, extra: Self.webhookConfig(port: receiver.port, maxAttempts: 2) + "\nhttp: {port: \(port)}")
        // Given a webhook that always fails, then one that refuses the body outright
        receiver.answer(500)
        let run = try Self.start(harness, config: config, log: "run.log")
        defer { run.kill(SIGKILL) }
        try Self.fire(harness)
        try receiver.waitFor(path: "/hook", timeout: 60) { $0.count >= 2 }
        receiver.answer(410)
        try Self.resolve(harness)
        try receiver.waitFor(path: "/hook", timeout: 60) { $0.count >= 3 }

        // Then both changes are in the dead-letter topic with why, after 2 tries and after 1
        var dead: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(30)
        while dead.count < 2, Date() < deadline {
            dead = try harness.readTopic("segmenter-dlq").filter { $0["source_topic"] as? String == "segment-alerts" }
            if dead.count < 2 { Thread.sleep(forTimeInterval: 0.3) }
        }
        try #require(dead.count == 2, "dead letters: \(dead); run log: \(run.output.suffix(1500))")
        #expect((dead[0]["error"] as? String)?.contains("webhook failed after 2 tries: HTTP 500") == true, "\(dead[0])")
        #expect((dead[1]["error"] as? String)?.contains("webhook failed after 1 tries: HTTP 410") == true, "\(dead[1])")
        #expect((dead[0]["payload"] as? String)?.contains(#""state":"firing""#) == true)
        #expect(receiver.requests(path: "/hook").count == 3, "a refusal is not retried")
        // And the failures show in the metrics and in inspect alerts
        let (_, metrics) = try Processes.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/metrics"])
        #expect(metrics.contains(#"segmenter_alert_deliveries_total{target="webhook",outcome="dead_lettered"} 2"#), "\(metrics.suffix(3000))")
        #expect(metrics.contains(#"segmenter_alert_deliveries_total{target="webhook",outcome="failed"} 3"#))
        let (_, inspect) = try Processes.run(harness.bin, ["inspect", "alerts", "--config", config],
                                            environment: ["SEGMENTER_WEBHOOK_SECRET": Self.secret])
        #expect(inspect.contains("webhook: 0 delivered, 3 failed tries, 2 dead-lettered"), "\(inspect)")
        #expect(inspect.contains("HTTP 410"), "\(inspect)")
    }

    /// `run` with the webhook's secret in its environment.
    static func start(_ harness: Harness, config: String, log: String) throws -> Processes.Running {
        try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent(log),
                              environment: ["SEGMENTER_WEBHOOK_SECRET": secret])
    }

    static func webhookConfig(port: UInt16, maxAttempts: Int) -> String {
        config(deliver: """
            webhook: {url: "http://127.0.0.1:\(port)/hook", secret: "${SEGMENTER_WEBHOOK_SECRET}"}
            max_attempts: \(maxAttempts)
            retry_backoff: 1s
            """)
    }

    static func signature(_ body: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    static func alertmanagerAlerts(port: UInt16) -> [[String: Any]] {
        guard let (status, text) = try? Processes.run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/api/v2/alerts"]), status == 0,
              let list = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else { return [] }
        return list
    }

    /// The status of an Alertmanager notification about busy_day, if it is one.
    static func amNotification(_ requests: [WebhookReceiver.Request]) -> String? {
        requests.last { ($0.json["alerts"] as? [[String: Any]])?.contains { ($0["labels"] as? [String: String])?["alertname"] == "busy_day" } == true }?
            .json["status"] as? String
    }
}
