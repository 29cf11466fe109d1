import Foundation
import Testing
import SegmenterCore

/// With `clock: hybrid`, an alert on "zero activity among users who signed up in the last 24 h"
/// fires although nothing arrives any more: the clock follows the wall clock once caught up.
@Suite(.serialized) struct AbsenceAlertTests {
    @Test func hybridClockFiresAnAlertOnASilentStream() throws {
        let harness = try Harness()
        let port = Processes.freePort()
        let config = try harness.writeConfig(batch: 100, extra: """
            http:
              port: \(port)
            clock: hybrid
            segments:
              - {name: recent_signups, rule: "hours_since_signup <= 24"}
            kpis:
              - {name: zero_share, share: "activities_since_signup = 0"}
            alerts:
              - {name: silent_signups, segment: recent_signups, kpi: zero_share, threshold: "> 0.9", for: 4s, min_members: 10}
            kpi_emit_interval: 200ms
            kpi_step: 1s
            """)
        // Twenty users sign up now; none is ever active; then the stream goes silent. With the
        // event clock `now` would stay at the sign-ups and `for: 4s` could never elapse.
        let signedUp = Instant(seconds: Int64(Date().timeIntervalSince1970))
        try harness.produce(topic: "activity", messages: (0..<20).map { n in
            ("s\(n)", #"{"event_id":"signup-\#(n)","user_id":"s\#(n)","type":"signup","ts":"\#(signedUp)"}"#)
        })
        let run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        var firing: [String: Any]?
        let deadline = Date().addingTimeInterval(60)
        while firing == nil, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.5)
            firing = try harness.readTopic("segment-alerts").first { $0["state"] as? String == "firing" }
        }
        let alert = try #require(firing, "no firing alert on a silent stream; run log: \(run.output.suffix(1500))")
        #expect(alert["alert"] as? String == "silent_signups")
        #expect(alert["value"] as? Double == 1)
        // It fired at a `now` past the last event by at least `for:`: the clock moved on its own.
        let asOf = try RFC3339.parse(alert["as_of"] as! String).get()
        #expect(asOf.nanoseconds - signedUp.nanoseconds >= 4 * Instant.nanosPerSecond)
        #expect(harness.committedOffsets(config: config) == 20)

        // A SIGKILL and a restart do not fire it again: the firing state is durable.
        run.kill(SIGKILL)
        run.wait(seconds: 10)
        let restarted = Instant(seconds: Int64(Date().timeIntervalSince1970))
        let again = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run2.log"))
        defer { again.kill(SIGKILL) }
        again.waitForLog("KPI leader", timeout: 30)
        #expect(again.output.contains("assigned"), "the restarted run must own the partitions: \(again.output.suffix(1000))")
        // Many emit intervals (200 ms) with the alert evaluated: the leader's clock moved 3 s past the restart.
        let evaluated = waitUntil(timeout: 30) {
            let ingest = try? JSONSerialization.jsonObject(with: Data(Curl.get("http://127.0.0.1:\(port)/api/ingest").1.utf8)) as? [String: Any]
            let now = (ingest?["now"] as? String).flatMap { try? RFC3339.parse($0).get() }
            return ingest?["kpi_leader"] as? Bool == true && (now?.nanoseconds ?? 0) >= restarted.adding(seconds: 3).nanoseconds
        }
        #expect(evaluated, "the restarted run's clock must move on: \(again.output.suffix(1000))")
        let messages = try harness.readTopic("segment-alerts").filter { $0["alert"] as? String == "silent_signups" }
        #expect(messages.count == 1, "exactly one message per state change: \(messages)")
    }
}
