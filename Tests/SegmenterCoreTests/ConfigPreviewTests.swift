import Testing
@testable import SegmenterCore

/// `preview`'s sums: who would enter and exit against what was published, KPIs after, alerts.
@Suite struct ConfigPreviewTests {
    static let t0 = Instant(seconds: 1_793_527_200)  // 2026-11-01T10:00:00Z
    static let tightened = SegmentCatalog(
        segments: [try! SegmentDefinition(name: "big_spenders", ruleText: "spend(30d) > 100")],
        kpis: [try! KPIDefinition(name: "spend", kind: .sum, expressionText: "spend(30d)", segments: nil)])

    /// A user who spent `cents` today, evaluated under `catalog`.
    static func evaluation(_ cents: Int64, _ catalog: SegmentCatalog = tightened) -> UserEvaluation {
        var profile = UserProfile()
        var days: [DayNumber: DayAggregate] = [:]
        if let change = profile.apply(UserEvent(eventID: "c", userID: "u", ts: t0, body: .billing(cents: cents)), calendar: .utc) {
            days[change.day] = change.delta
        }
        return catalog.evaluate(profile: profile, days: days, now: t0, calendar: .utc)
    }

    @Test func usersEnterAndExitAgainstWhatWasPublished() {
        var preview = ConfigPreview(catalog: Self.tightened, sampleSize: 2)
        // Three were published in big_spenders (and in a segment the new config drops); two stay.
        for (user, cents) in [("a", 5_000), ("b", 20_000), ("c", 6_000), ("d", 30_000)] as [(String, Int64)] {
            let published: Set<String> = user == "d" ? ["all"] : ["all", "big_spenders", "old_segment"]
            preview.add(user, published: published, evaluation: Self.evaluation(cents))
        }
        #expect(preview.users == 4)
        #expect(preview.segments["big_spenders"] == ConfigPreview.SegmentChange(segment: "big_spenders", enter: 1, exit: 2, entering: ["d"], exiting: ["a", "c"]))
        #expect(preview.segments["old_segment"]?.exit == 3 && preview.exits == 5)
        let kpis = preview.kpis(now: [:], current: Self.tightened)
        #expect(kpis.first { $0.key == KPIKey(segment: "big_spenders", kpi: "spend") }?.after == 500)
        #expect(kpis.first { $0.key == KPIKey(segment: "big_spenders", kpi: "members") }?.after == 2)
    }

    @Test func alertsWhoseConditionWouldFlip() {
        var preview = ConfigPreview(catalog: Self.tightened)
        preview.add("b", published: ["all", "big_spenders"], evaluation: Self.evaluation(20_000))
        let members = KPIKey(segment: "big_spenders", kpi: "members")
        let kpis = [ConfigPreview.KPIChange(key: members, now: 10, after: 1)]
        let few = AlertDefinition(name: "few", segment: "big_spenders", kpi: "members", condition: .threshold(.less, 5))
        let many = AlertDefinition(name: "many", segment: "big_spenders", kpi: "members", condition: .threshold(.greater, 50))
        let drop = AlertDefinition(name: "drop", segment: "big_spenders", kpi: "members", condition: .drop(percent: 50))
        #expect(preview.alerts([few, many, drop], kpis: kpis).map(\.alert) == ["few"])  // drop: no baseline yet
        #expect(preview.alerts([few, many, drop], kpis: kpis, baselines: ["drop": 10]) == [
            ConfigPreview.AlertChange(alert: "few", now: false, after: true), ConfigPreview.AlertChange(alert: "drop", now: false, after: true)])
    }
}
