import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore

/// Alerts published through the KPI publisher's outbox: once per state change, baselines from
/// recorded end-of-day values, and no re-fire after a restart (issue 4).
@Suite struct AlertPublishingTests {
    let catalog = SegmentCatalog(segments: [try! SegmentDefinition(name: "new", ruleText: "days_since_signup <= 7")],
                                 kpis: [try! KPIDefinition(name: "minutes", kind: .avg, expressionText: "active_minutes(1d)", segments: nil)])
    let alerts = [
        AlertDefinition(name: "minutes_drop", segment: "all", kpi: "minutes", condition: .drop(percent: 50),
                        baseline: .init(count: 3), forSeconds: 3600, minMembers: 2, resolveAt: 20),
        AlertDefinition(name: "few_new", segment: "new", kpi: "members", condition: .threshold(.less, 1)),
    ]

    /// Partials for `members` users in `all` with average minutes `minutes`, and `new` members.
    func partials(members: Int64, minutes: Double, new: Int64) -> [KPIKey: KPIPartial] {
        [KPIKey(segment: "all", kpi: "members"): KPIPartial(counted: members, total: Double(members)),
         KPIKey(segment: "all", kpi: "minutes"): KPIPartial(counted: members, total: minutes * Double(members)),
         KPIKey(segment: "new", kpi: "members"): KPIPartial(counted: new, total: Double(new))]
    }

    func alertMessages(_ publisher: KPIPublisher) throws -> [[String: Any]] {
        try publisher.outbox(after: 0, limit: 1000).filter { $0.topic == "alerts" }
            .map { try JSONSerialization.jsonObject(with: Data($0.value)) as! [String: Any] }
    }

    @Test func dropAgainstEndOfDayBaselineFiresAfterForAndSurvivesARestart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alerts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let day0 = Instant(seconds: 1_780_000_000 / 86_400 * 86_400)
        func at(day: Int64, hour: Int64) -> Instant { day0.adding(seconds: day * 86_400 + hour * 3600) }
        var publisher = try KPIPublisher(directory: directory, topic: "kpis")
        let entry = DrillDownEntry(dimension: "signup_week", group: "2026-03-16", members: 4, value: 0, contribution: -8)
        func publish(_ now: Instant, minutes: Double, new: Int64 = 5) throws {
            try publisher.publish(catalog: catalog, partials: partials(members: 10, minutes: minutes, new: new), now: now,
                                  causes: [:], alerts: alerts, alertTopic: "alerts", drillDown: { _, _ in [entry] })
        }
        // Three normal days end at 20 minutes: the baseline.
        for day in 0..<3 { try publish(at(day: Int64(day), hour: 12), minutes: 20) }
        try publish(at(day: 3, hour: 1), minutes: 20)
        #expect(publisher.history[KPIKey(segment: "all", kpi: "minutes")]?.count == 3)
        // Minutes halve at 02:00: the condition holds, but `for: 1h` has not passed.
        try publish(at(day: 3, hour: 2), minutes: 9)
        try publish(at(day: 3, hour: 2).adding(seconds: 1800), minutes: 9)
        #expect(try alertMessages(publisher).isEmpty)
        try publish(at(day: 3, hour: 3), minutes: 9)
        var messages = try alertMessages(publisher)
        #expect(messages.count == 1)
        #expect(messages.first?["state"] as? String == "firing")
        #expect(messages.first?["baseline"] as? Double == 20)
        #expect(messages.first?["threshold"] as? Double == 10)
        let drill = messages.first?["drill_down"] as? [[String: Any]]
        #expect(drill?.first?["group"] as? String == "2026-03-16")
        #expect(try AlertStateReader(directory: directory).read()["minutes_drop"]?.drillDown?.contains("2026-03-16") == true)

        // A restart keeps the firing state: no second "firing".
        publisher = try KPIPublisher(directory: directory, topic: "kpis")
        try publish(at(day: 3, hour: 4), minutes: 9)
        // Hysteresis: 15 is above the firing level (10) but not back within 20% (16): still firing.
        try publish(at(day: 3, hour: 5), minutes: 15)
        #expect(try alertMessages(publisher).count == 1)
        try publish(at(day: 3, hour: 6), minutes: 17)
        messages = try alertMessages(publisher)
        #expect(messages.map { $0["state"] as? String } == ["firing", "resolved"])

        // A threshold on members: the new-users segment empties.
        try publish(at(day: 3, hour: 7), minutes: 17, new: 0)
        #expect(try alertMessages(publisher).last?["alert"] as? String == "few_new")
    }
}
