import Testing
import SegmenterCore
@testable import ServiceConfig

/// `metrics:` (SPEC §4b): every bad definition refused at start-up with file:line:col and a caret;
/// rules and KPIs read metrics by name.
@Suite struct MetricConfigTests {
    func parse(_ yaml: String) throws -> SegmenterConfig {
        try SegmenterConfig.parse(yaml: yaml, source: "m.yaml", environment: [:])
    }

    @Test(arguments: [
        // Filters and expressions: the column points at the problem inside the text, with a caret.
        ("metrics:\n  - name: logins\n    count: type = 'login' and\n", "m.yaml:3:30: metric logins count: expected a value", "type = 'login' and\n                      ^"),
        ("metrics:\n  - name: logins\n    count: kind = 'login'\n", "m.yaml:3:12: metric logins count: unknown event field 'kind'", "    ^~~~"),
        ("metrics:\n  - name: logins\n    count: attr.plan = 'pro'\n", "m.yaml:3:12: metric logins count: a filter reads the event's fields", "    ^~~~"),
        ("metrics:\n  - name: logins\n    count: amount + 1\n", "m.yaml:3:12: metric logins count: a filter must be true or false, but this is a number", "^"),
        ("metrics:\n  - name: rev\n    sum: type\n", "m.yaml:3:10: metric rev sum: a sum needs a number, but this is a string", "^~~~"),
        ("metrics:\n  - name: rev\n    sum: amount\n    where: prop.plan = 'pro' or\n", "m.yaml:4:32: metric rev where: expected a value", "^"),
        ("metrics:\n  - name: rev\n    sum: amount\n    where: type = 1\n", "m.yaml:4:12: metric rev where: cannot compare a string with a number", "^~~~~~~~"),
        ("metrics:\n  - name: s\n    sequence: {first: type = 'a', then: prop. = 1, within: 1h}\n", "metric s then: expected a property name", "^"),
        ("metrics:\n  - name: s\n    sequence: {first: type = 'a', then_not: type = 'b', within: 0h}\n", "m.yaml:3:65: within must be more than 0", ""),
        ("metrics:\n  - name: s\n    sequence: {first: type = 'a', then_not: type = 'b', within: 999999999999999999d}\n", "m.yaml:3:65: expected a duration like 30s", ""),
        ("metrics:\n  - name: s\n    sequence: {first: type = 'a', then: type = 'b', then_not: type = 'c', within: 1h}\n", "exactly one of then:", ""),
        ("metrics:\n  - name: s\n    sequence: {first: type = 'a', within: 1h}\n", "exactly one of then:", ""),
        ("metrics:\n  - name: s\n    sequence: {then: type = 'a', within: 1h}\n", "sequence s needs first:, within:", ""),
        // Entries.
        ("metrics:\n  - name: Logins\n    count: type = 'login'\n", "m.yaml:2:11: metric name must match", ""),
        ("metrics:\n  - name: spend\n    count: type = 'login'\n", "m.yaml:2:11: metric name spend is taken by a built-in feature", ""),
        ("metrics:\n  - name: a\n    count: type = 'x'\n  - name: a\n    count: type = 'y'\n", "m.yaml:4:11: duplicate metric a", ""),
        ("metrics:\n  - name: a\n    count: type = 'x'\n    sum: amount\n", "exactly one of count:, sum:", ""),
        ("metrics:\n  - name: a\n    count: type = 'x'\n    where: amount > 1\n", "m.yaml:4:12: a count takes its filter as its value", ""),
        ("metrics:\n  - name: a\n    cont: type = 'x'\n", "m.yaml:3:5: unknown key \"cont\"", ""),
        // Rules read metrics by name, with a window; event fields only through a metric.
        ("metrics:\n  - {name: logins, count: type = 'login'}\nsegments:\n  - {name: s, rule: logins >= 3}\n",
         "segment s: metric logins needs a window, like logins(7d) or logins(lifetime)", ""),
        ("metrics:\n  - {name: logins, count: type = 'login'}\nsegments:\n  - {name: s, rule: logins(week) >= 3}\n", "expected a window like 7d, or lifetime", ""),
        ("segments:\n  - {name: s, rule: prop.plan = 'pro'}\n", "prop.NAME is an event's property", ""),
        ("segments:\n  - {name: s, rule: type = 'login'}\n", "'type' is a field of an event: define a metric over it", ""),
        ("segments:\n  - {name: s, rule: hours_since_last(logins) < 1}\n", "hours_since_last takes a metric's name (no metrics are defined)", ""),
        ("metrics:\n  - {name: logins, count: type = 'login'}\nkpis:\n  - {name: k, avg: hours_since_last(logins)}\n",
         "KPI expressions may not use hours_since_last(logins)", ""),
    ])
    func rejectsBadMetrics(yaml: String, message: String, caret: String) {
        do {
            _ = try parse(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect("\(error)".contains(message), "got: \(error)")
            if !caret.isEmpty { #expect("\(error)".contains(caret), "no caret in: \(error)") }
        }
    }

    @Test func metricsFeedRulesAndKPIsAndPrintAsParsed() throws {
        let config = try parse("""
            metrics:
              - name: logins
                count: type = 'login'
              - name: pro_revenue
                sum: amount
                where: type = 'charge'   and prop.plan='pro'
              - name: features_used
                count_distinct: prop.feature
              - name: abandoned_checkouts
                sequence: {first: type = 'checkout_started', then_not: type = 'purchase', within: 24h}
            segments:
              - {name: engaged, rule: "logins(7d) >= 3 and features_used(lifetime) > 1"}
              - {name: abandoners, rule: "abandoned_checkouts(1d) >= 1 or hours_since_last(abandoned_checkouts) < 48"}
            kpis:
              - {name: revenue, sum: pro_revenue(30d)}
            """)
        let metrics = config.catalog.metrics
        #expect(metrics.metrics.map(\.name) == ["logins", "pro_revenue", "features_used", "abandoned_checkouts"])
        #expect(metrics.metrics[1].canonical == "sum: amount where: ((type = 'charge') and (prop.plan = 'pro'))")
        #expect(metrics.metrics[3].shape == .sequence(withinNanos: 24 * Instant.nanosPerHour, abandoned: true))
        #expect(config.catalog.longestWindow == 30)
        #expect(config.catalog.timeTriggers.abandonments.map(\.name) == ["abandoned_checkouts"])
        #expect(config.catalog.timeTriggers.metricWindows[metrics.refs["logins"]!] == [7])
        // The key follows the definition as parsed: spacing does not change it, a definition does.
        let respaced = try parse("metrics:\n  - {name: pro_revenue, sum: amount, where: \"type='charge' and prop.plan = 'pro'\"}\n")
        #expect(respaced.catalog.metrics.metrics[0].key == metrics.metrics[1].key)
        let changed = try parse("metrics:\n  - {name: pro_revenue, sum: amount, where: \"type='charge' and prop.plan = 'team'\"}\n")
        #expect(changed.catalog.metrics.metrics[0].key != metrics.metrics[1].key)
    }
}

extension MetricConfigTests {
    @Test func aWindowThatCanNeverHoldAnAbandonedInstanceIsWarnedAbout() throws {
        let metric = "metrics:\n  - {name: abandoned, sequence: {first: type = 'a', then_not: type = 'b', within: 24h}}\n"
        let short = try parse(metric + "segments:\n  - {name: s, rule: abandoned(1d) >= 1}\n")
        #expect(short.warnings.contains { $0.contains("abandoned(1d) can never count an abandoned instance") && $0.contains("use abandoned(2d)") },
                "\(short.warnings)")
        let fine = try parse(metric + "segments:\n  - {name: s, rule: abandoned(2d) >= 1}\n")
        #expect(fine.warnings.isEmpty, "\(fine.warnings)")
    }
}
