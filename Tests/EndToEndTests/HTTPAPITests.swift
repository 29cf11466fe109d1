import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import SegmenterCore

/// The HTTP API of a running `segmenter run`: health, readiness and JSON over live state.
@Suite(.serialized) struct HTTPAPITests {
    func get(_ url: String) async throws -> (Int, [String: Any]?, Any?) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        let object = try? JSONSerialization.jsonObject(with: data)
        return ((response as! HTTPURLResponse).statusCode, object as? [String: Any], object)
    }

    /// Every legal user id (1...128 characters, any of them) round-trips through the API, `inspect
    /// user` (asking the owner over the API) and `explain` (issue 25, item 2: ids with `@` were unknown).
    @Test func everyLegalUserIDRoundTripsThroughTheAPIAndTheCLI() async throws {
        let harness = try Harness()
        let port = Processes.freePort()
        let config = try harness.writeConfig(batch: 50, extra: """
            segments:
              - {name: spenders, rule: "spend(30d) > 5"}
            http:
              port: \(port)
            """)
        let ids = ["alice@example.com", "a b", "a/b", "q?x=1", "h#1", "p%20q", "100%", "ünï cødé 😀", "..", "a+b&c=d",
                   String(repeating: "é", count: 128)]
        let now = Instant.wallClock().adding(seconds: -3600)
        let messages = ids.enumerated().map { index, id in
            (key: id, payload: #"{"event_id":"s\#(index)","user_id":\#(JSONText.quote(id)),"type":"signup","ts":"\#(now)"}"#)
        }
        try harness.produce(topic: "activity", messages: messages)
        // Each a charge a minute later on the other topic: both inputs have time, so the pairs' watermarks pass the sign-ups.
        try harness.produce(topic: "billing", messages: ids.enumerated().map { index, id in
            (key: id, payload: #"{"event_id":"c\#(index)","user_id":\#(JSONText.quote(id)),"type":"charge","amount":9,"currency":"USD","ts":"\#(now.adding(seconds: 60))"}"#)
        })
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        let base = "http://127.0.0.1:\(port)"
        let deadline = Date().addingTimeInterval(60)
        while harness.committedOffsets(config: config) < 2 * ids.count, Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        for id in ids {
            let encoded = try #require(id.addingPercentEncoding(withAllowedCharacters: .alphanumerics))
            let (status, user, _) = try await get("\(base)/api/users/\(encoded)")
            #expect(status == 200 && (user?["features"] as? [String: Any])?["user_id"] as? String == id, "\(id): \(status)")
            let (explained, explanation, _) = try await get("\(base)/api/users/\(encoded)/explain")
            #expect(explained == 200 && explanation?["user_id"] as? String == id, "\(id): explain \(explained)")
            let (inspected, text) = try Processes.run(harness.bin, ["inspect", "user", id, "--config", config])
            #expect(inspected == 0 && text.contains("user \(id) (partition"), "inspect user \(id): \(text.prefix(200))")
            let (cli, lines) = try Processes.run(harness.bin, ["explain", id, "--config", config])
            #expect(cli == 0 && lines.contains("user \(id) as of"), "explain \(id): \(lines.prefix(200))")
        }
    }

    @Test func endpointsAnswerWithLiveState() async throws {
        let harness = try Harness()
        let produced = try harness.generate(["--users", "200", "--events", "6000", "--seed", "3"])
        let port = Processes.freePort()
        let config = try harness.writeConfig(batch: 500, extra: """
            segments:
              - {name: big_spenders, rule: "spend(30d) > 500"}
            kpis:
              - {name: spend, sum: "spend(30d)"}
            http:
              port: \(port)
            """)
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        let base = "http://127.0.0.1:\(port)"
        let deadline = Date().addingTimeInterval(60)
        while harness.committedOffsets(config: config) < produced.total, Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }

        let (health, healthBody, _) = try await get("\(base)/healthz")
        #expect(health == 200 && healthBody?["status"] as? String == "ok")
        let (ready, readyBody, _) = try await get("\(base)/readyz")
        #expect(ready == 200, "\(String(describing: readyBody))")

        let (status, _, list) = try await get("\(base)/api/segments")
        #expect(status == 200)
        let segments = try #require(list as? [[String: Any]])
        #expect(segments.map { $0["segment"] as? String } == ["all", "big_spenders"])
        let all = try #require(segments.first?["kpis"] as? [String: Any])
        #expect((all["members"] as? NSNumber)?.intValue == 200)

        let (userStatus, user, _) = try await get("\(base)/api/users/u1")
        #expect(userStatus == 200)
        #expect((user?["features"] as? [String: Any])?["user_id"] as? String == "u1")
        #expect((user?["segments"] as? [String])?.contains("all") == true)
        #expect(try await get("\(base)/api/users/nobody").0 == 404)
        #expect(try await get("\(base)/api/segments/nope").0 == 404)
        // A number from a request is bounded: a 400 with the reason, and the service lives on (issue 25, item 3)
        let (tooLong, refusal, _) = try await get("\(base)/api/export/features?windows=9223372036854775807")
        #expect(tooLong == 400 && (refusal?["error"] as? String)?.contains("1...3650") == true, "\(String(describing: refusal))")
        #expect(try await get("\(base)/healthz").0 == 200)

        // Prometheus text: the metric names are there and moved with the events.
        // (KPIs are published once per emit interval, 1 s: wait for the first, bounded)
        var (data, response) = try await URLSession.shared.data(from: URL(string: "\(base)/metrics")!)
        for _ in 0..<20 where !String(decoding: data, as: UTF8.self).contains("segmenter_kpi_deltas_emitted_total ") {
            try await Task.sleep(for: .milliseconds(250))
            (data, response) = try await URLSession.shared.data(from: URL(string: "\(base)/metrics")!)
        }
        #expect((response as! HTTPURLResponse).statusCode == 200)
        let metrics = String(decoding: data, as: UTF8.self)
        for name in ["segmenter_events_applied_total", "segmenter_events_deduplicated_total", "segmenter_events_dead_lettered_total",
                     "segmenter_batch_size", "segmenter_commit_duration_seconds", "segmenter_poll_to_output_seconds_count", "segmenter_membership_changes_total{cause=\"event\"}",
                     "segmenter_consumer_lag{", "segmenter_outbox_depth", "segmenter_outbox_oldest_age_seconds",
                     "segmenter_kpi_deltas_emitted_total", "segmenter_timers", "segmenter_state_bytes",
                     "segmenter_commit_thread_seconds_count{action=\"commit\"}", "segmenter_commit_thread_seconds_bucket{action=\"emit_kpis\""] {
            #expect(metrics.contains(name), "\(name) missing")
        }
        // Alone in its group, this instance owns partition 0: it is the KPI leader.
        #expect(metrics.split(separator: "\n").contains("segmenter_kpi_leader 1.0") || metrics.split(separator: "\n").contains("segmenter_kpi_leader 1"),
                "\(metrics.split(separator: "\n").filter { $0.hasPrefix("segmenter_kpi_leader") })")
        let kpiDeltas = metrics.split(separator: "\n").first { $0.hasPrefix("segmenter_kpi_deltas_emitted_total ") }
        #expect(kpiDeltas.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 > 0 } == true, "\(String(describing: kpiDeltas))")
        // Operational figures are refreshed once per KPI emit interval (1 s).
        var (ingestStatus, ingest, _) = try await get("\(base)/api/ingest")
        for _ in 0..<20 where (ingest?["lag"] as? [String: Any])?.count != 8 {
            try await Task.sleep(for: .milliseconds(250))
            (ingestStatus, ingest, _) = try await get("\(base)/api/ingest")
        }
        #expect(ingestStatus == 200 && (ingest?["consumed"] as? NSNumber)?.intValue == produced.total)
        #expect(ingest?["kpi_leader"] as? Bool == true, "alone in its group, it leads the KPIs")
        #expect((ingest?["lag"] as? [String: Any])?.count == 8, "lag per owned input partition: \(String(describing: ingest))")
        // Each pair's watermark, read to its end once everything is consumed (and idle for 2 s);
        // the group's is the earliest of them
        func pairsOf(_ ingest: [String: Any]?) -> [String: [String: Any]] { ingest?["pairs"] as? [String: [String: Any]] ?? [:] }
        for _ in 0..<40 where !pairsOf(ingest).values.allSatisfy({ $0["caught_up"] as? Bool == true }) {
            try await Task.sleep(for: .milliseconds(250))
            (ingestStatus, ingest, _) = try await get("\(base)/api/ingest")
        }
        let pairs = pairsOf(ingest)
        #expect(pairs.count == 4 && pairs.values.allSatisfy { $0["caught_up"] as? Bool == true && $0["lag"] as? Int == 0 }, "\(pairs)")
        let watermarks = pairs.compactMapValues { $0["watermark"] as? String }
        if let held = (ingest?["held_back_by"] as? NSNumber).map({ String($0.intValue) }) {
            #expect(ingest?["now"] as? String == watermarks[held] && watermarks[held] == watermarks.values.min(), "\(String(describing: ingest))")
        } else {
            Issue.record("no pair holds the group's watermark: \(String(describing: ingest))")
        }
        let consumed = metrics.split(separator: "\n").first { $0.hasPrefix("segmenter_events_consumed_total ") }
        #expect(consumed.flatMap { Int($0.split(separator: " ").last ?? "") } == produced.total, "\(String(describing: consumed))")
    }
}
