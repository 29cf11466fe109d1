import Testing
import SegmenterCore
@testable import SegmenterService

/// Bad configuration is rejected at start-up with file, line and problem (SPEC §4).
@Suite struct ConfigTests {
    func parse(_ yaml: String, env: [String: String] = [:]) throws -> SegmenterConfig {
        try SegmenterConfig.parse(yaml: yaml, source: "test.yaml", environment: env)
    }

    @Test(arguments: [
        ("kafka:\n  bootstrap.servers: x\ntopcs: {}\n", "test.yaml:3:1: unknown key \"topcs\""),
        ("time_zone: Mars/Olympus\n", "test.yaml:1:12: unknown time zone \"Mars/Olympus\""),
        ("clock: wall\n", "clock must be event or hybrid"),
        ("currency: usd\n", "currency must be an ISO 4217 code"),
        ("fx:\n  EUR: abc\n", "test.yaml:2:8: fx rate for EUR must be a positive decimal"),
        ("dedupe_horizon: 7 days\n", "expected a duration like 30s"),
        ("kafka:\n  sasl.password: ${NOT_SET_ANYWHERE}\n", "test.yaml:2:18: environment variable NOT_SET_ANYWHERE is not set"),
        ("ingest:\n  batch_max_events: 0\n", "expected a whole number in 1...1000000"),
        ("topics:\n  activity: [a, b]\n", "expected a single value"),
        ("kafka: [1\n", "not valid YAML"),
        ("alerts:\n  - {name: a, segment: nope, kpi: members, threshold: '< 1'}\n", "test.yaml:2:24: alert a: unknown segment nope"),
        ("alerts:\n  - {name: a, segment: all, kpi: revenue, threshold: '< 1'}\n", "alert a: segment all has no KPI revenue"),
        ("alerts:\n  - {name: a, segment: all, kpi: members, threshold: 'below 1'}\n", "threshold must look like"),
        ("alerts:\n  - {name: a, segment: all, kpi: members, drop: 10%, rise: 5%}\n", "exactly one of threshold:, drop:, rise:"),
    ])
    func rejectsBadConfiguration(yaml: String, message: String) {
        do {
            _ = try parse(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect("\(error)".contains(message), "got: \(error)")
        }
    }

    @Test func readsAlerts() throws {
        let config = try parse("""
            segments:
              - {name: new, rule: "days_since_signup <= 7"}
            kpis:
              - {name: zero, share: "activities_since_signup = 0"}
            alerts:
              - {name: dead_cohort, segment: new, kpi: zero, threshold: "> 0.9", for: 10m, min_members: 20, resolve_at: 0.5}
              - {name: fewer, segment: all, kpi: members, drop: 30%, baseline_days: 4, same_weekday: true}
            """)
        #expect(config.alerts.count == 2)
        #expect(config.alerts[0].condition == .threshold(.greater, 0.9))
        #expect(config.alerts[0].forSeconds == 600 && config.alerts[0].minMembers == 20 && config.alerts[0].resolveAt == 0.5)
        #expect(config.alerts[1].condition == .drop(percent: 30))
        #expect(config.alerts[1].baseline == .init(count: 4, sameWeekday: true))
    }

    @Test func readsSecretsFromTheEnvironmentAndKeepsThemOutOfPrintouts() throws {
        let config = try parse("kafka:\n  bootstrap.servers: broker:9093\n  sasl.password: ${KAFKA_PASSWORD}\nfx:\n  EUR: 1.08\n",
                               env: ["KAFKA_PASSWORD": "hunter2"])
        #expect(config.kafka["sasl.password"] == "hunter2")
        #expect(config.kafka.redacted["sasl.password"] == "***")
        #expect(config.kafka.redacted["bootstrap.servers"] == "broker:9093")
        #expect(config.fx["EUR"]?.numerator == 108)
    }
}
