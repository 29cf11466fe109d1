import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SegmenterCore
import Testing

/// The dashboard's KPI charts in a real browser (Debian's chromium, headless): each KPI of a
/// chosen segment over event time, with axes, and the periods its alert fired shaded, from
/// `/api/history?segment=` (kept in partition 0's database, so they survive a restart).
@Suite(.serialized) struct ChartTests {
    @Test func aSegmentsKPIChartsShadeTheAlertsFiringPeriodAndSurviveARestart() async throws {
        let browser = try #require(DashboardTests.chromium, "chromium is not installed: run the tests through scripts/test, which installs it")
        let harness = try Harness()
        let port = Processes.freePort()
        let config = try harness.writeConfig(batch: 100, extra: """
            segments:
              - {name: recent_spenders, rule: "spend(3d) > 100"}
            kpis:
              - {name: spend_3d, sum: "spend(3d)"}
            alerts:
              - {name: many_recent_spenders, segment: recent_spenders, kpi: members, threshold: "> 100"}
            kpi_emit_interval: 100ms
            http:
              port: \(port)
            """)
        var run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run.log"))
        defer { run.kill(SIGKILL) }
        let started = Date().addingTimeInterval(30)
        while !run.output.contains("assigned"), Date() < started { try await Task.sleep(for: .milliseconds(100)) }
        // Produced at a pace, so the event clock moves while it is consumed (a backlog read at once
        // would publish everything at one instant: one point per KPI).
        let produced = try harness.generate(["--users", "150", "--events", "6000", "--days", "10", "--seed", "9", "--rate", "1500"])
        let deadline = Date().addingTimeInterval(90)
        while harness.committedOffsets(config: config) < produced.total, Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        let base = "http://127.0.0.1:\(port)"
        #expect(harness.waitUntilKPIsPublished(config: config, apiBase: base), "the last emits: \(run.output.suffix(800))")

        // The API: the segment's KPIs over time, oldest first, and the alert's firing periods
        func history() async throws -> [String: Any] {
            let (_, body) = Curl.get("\(base)/api/history?segment=recent_spenders")
            let data = Data(body.utf8)
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        let before = try await history()
        let kpis = try #require(before["kpis"] as? [String: [[String: Any]]])
        #expect(Set(kpis.keys) == ["members", "spend_3d"])
        let members = try #require(kpis["members"])
        #expect(members.count >= 3, "a series, not a point: \(members.count)")
        let times = members.compactMap { $0["at"] as? String }
        #expect(times == times.sorted(), "oldest first")
        let firing = try #require(before["firing"] as? [[String: Any]])
        #expect(!firing.isEmpty && firing.allSatisfy { $0["alert"] as? String == "many_recent_spenders" && $0["kpi"] as? String == "members" },
                "the alert fired: \(firing); \(run.output.suffix(800))")
        let (missingStatus, _) = try await fetchStatus("\(base)/api/history?segment=nope")
        #expect(missingStatus == 404)

        // The page, rendered by Chromium: a chart per KPI with axes and the firing period shaded
        let screenshot = harness.work.appendingPathComponent("charts.png").path
        let page = base + "/#chart=recent_spenders"
        let (shotStatus, _) = try Processes.run(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=6000",
                                                          "--window-size=1280,1500", "--screenshot=\(screenshot)", page])
        #expect(shotStatus == 0 && FileManager.default.fileExists(atPath: screenshot))
        try? FileManager.default.removeItem(atPath: "/tmp/segmenter-charts.png")
        try? FileManager.default.copyItem(atPath: screenshot, toPath: "/tmp/segmenter-charts.png")
        let (domStatus, dom) = try Processes.run(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=6000", "--dump-dom", page])
        #expect(domStatus == 0)
        for text in [#"data-kpi="members""#, #"data-kpi="spend_3d""#, #"<rect class="firing""#, "many_recent_spenders firing", #"<path class="series" d="M"#,
                     #"<line class="axis""#] {
            #expect(dom.contains(text), "\(text) not in the charts")
        }

        // The alert started firing partway through: its shading starts right of the y axis (x = 64)
        let shadingStart = dom.components(separatedBy: #"<rect class="firing" x=""#).dropFirst().first.flatMap { Double($0.prefix { $0 != "\"" }) }
        #expect((shadingStart ?? 0) > 70, "the firing period should start partway: x = \(String(describing: shadingStart))")

        // And after a restart the series and periods are still there (SQLite, not memory)
        run.kill(SIGTERM)
        #expect(run.wait(seconds: 30) == 0)
        run = try Processes.Running(harness.bin, ["run", "--config", config], log: harness.work.appendingPathComponent("run2.log"))
        var after: [String: Any] = [:]
        var lastAnswer = "none"
        _ = await eventually(timeout: 90) {
            do {
                let (status, body) = try await fetchStatus("\(base)/api/history?segment=recent_spenders")
                lastAnswer = "\(status): \(body.prefix(300))"
                if status == 200, let answer = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                   (answer["kpis"] as? [String: [[String: Any]]])?["members"]?.count ?? 0 >= members.count {
                    after = answer
                    return true
                }
            } catch {
                lastAnswer = "\(error)"
            }
            return false
        }
        let runState = run.process.isRunning ? "running"
            : "gone (status \(run.process.terminationStatus), reason \(run.process.terminationReason.rawValue))"
        #expect(((after["kpis"] as? [String: [[String: Any]]])?["members"]?.count ?? 0) >= members.count,
                "series lost in a restart; last answer \(lastAnswer); the restarted run is \(runState); its log: \(run.output.suffix(1500))")
        #expect(((after["firing"] as? [[String: Any]])?.count ?? 0) >= firing.count, "firing periods lost in a restart")
    }

    func fetchStatus(_ url: String) async throws -> (Int, String) {
        let (status, body) = Curl.get(url)
        guard status != 0 else { throw URLError(.cannotConnectToHost) }
        return (status, body)
    }
}
