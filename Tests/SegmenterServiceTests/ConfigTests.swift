import Testing
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
    ])
    func rejectsBadConfiguration(yaml: String, message: String) {
        do {
            _ = try parse(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect("\(error)".contains(message), "got: \(error)")
        }
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
