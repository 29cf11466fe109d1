import Foundation
import KafkaIO
import Testing
import SegmenterCore
import Warehouse
@testable import ServiceConfig

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
        ("state_snapshot_interval: sometimes\n", "test.yaml:1:26: expected a duration like 30s"),
        ("kafka:\n  sasl.password: ${NOT_SET_ANYWHERE}\n", "test.yaml:2:18: environment variable NOT_SET_ANYWHERE is not set"),
        ("ingest:\n  batch_max_events: 0\n", "expected a whole number in 1...1000000"),
        ("topics:\n  activity: [a, b]\n", "expected a single value"),
        ("kafka: [1\n", "not valid YAML"),
        ("alerts:\n  - {name: a, segment: nope, kpi: members, threshold: '< 1'}\n", "test.yaml:2:24: alert a: unknown segment nope"),
        ("alerts:\n  - {name: a, segment: all, kpi: revenue, threshold: '< 1'}\n", "alert a: segment all has no KPI revenue"),
        ("alerts:\n  - {name: a, segment: all, kpi: members, threshold: 'below 1'}\n", "threshold must look like"),
        ("alerts:\n  - {name: a, segment: all, kpi: members, drop: 10%, rise: 5%}\n", "exactly one of threshold:, drop:, rise:"),
        // Durations are bounded where they are read: none can overflow later (issue 25, item 5).
        ("dedupe_horizon: 9223372036854775807d\n", "test.yaml:1:17: expected a duration like 30s, 15m, 24h or 7d (at most 36500d)"),
        ("dedupe_horizon: 9223372036854775807s\n", "at most 36500d"),
        ("state_snapshot_interval: 9223372036854775807d\n", "at most 36500d"),
        ("alerts:\n  - {name: a, segment: all, kpi: members, threshold: '< 1', for: 9223372036854775807d}\n", "at most 36500d"),
        ("kpi_emit_interval: 9223372036854775807d\n", "at most 36500d"),
        ("kpi_emit_interval: 2d\n", "kpi_emit_interval must be 1ms … 1d"),
        ("kpi_emit_interval: 0s\n", "kpi_emit_interval must be 1ms … 1d"),
    ])
    func rejectsBadConfiguration(yaml: String, message: String) {
        do {
            _ = try parse(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect("\(error)".contains(message), "got: \(error)")
        }
    }

    /// `${VAR}` is expanded once: what the environment holds is literal (issue 25, item 6).
    @Test func environmentValuesAreExpandedOnceAndTakenLiterally() throws {
        let config = try parse("kafka:\n  sasl.password: \"${SECRET}\"\n  sasl.username: \"a${LOOP}b\"\n  client.id: \"${A}-${B}\"\n",
                               env: ["SECRET": "abc${HOME}def", "HOME": "/root", "LOOP": "${LOOP}", "A": "${B}", "B": "x"])
        #expect(config.kafka["sasl.password"] == "abc${HOME}def")
        #expect(config.kafka["sasl.username"] == "a${LOOP}b")
        #expect(config.kafka["client.id"] == "${B}-x")
    }

    @Test func readsScaleOutSettings() throws {
        let defaults = try parse("")
        #expect(defaults.stateSnapshotIntervalSeconds == 600)
        #expect(defaults.topics.stateSnapshots == "segmenter-state" && defaults.topics.kpiPartials == "segmenter-kpi-partials")
        // Internal topics are named after the consumer group: another deployment's never mix in.
        let other = try parse("kafka:\n  group.id: growth\n")
        #expect(other.topics.stateSnapshots == "growth-state" && other.topics.kpiPartials == "growth-kpi-partials")
        let config = try parse("state_snapshot_interval: 90s\ntopics:\n  state_snapshots: snaps\n  kpi_partials: parts\n")
        #expect(config.stateSnapshotIntervalSeconds == 90)
        #expect(config.topics.stateSnapshots == "snaps" && config.topics.kpiPartials == "parts")
        #expect(try parse("state_snapshot_interval: \"off\"\n").stateSnapshotIntervalSeconds == 0)
        #expect(try parse("state_snapshot_interval: off\n").stateSnapshotIntervalSeconds == 0)
    }

    @Test func theDedupeHorizonDefaultsToTheLongestWindowPlusADay() throws {
        let windows = "segments:\n  - {name: a, rule: \"spend(30d) > 5\"}\nkpis:\n  - {name: m, avg: \"active_minutes(7d)\"}\n"
        #expect(try parse("").dedupeHorizon.seconds == 7 * 86_400)
        #expect(try parse(windows).dedupeHorizon.seconds == 31 * 86_400)
        #expect(try parse(windows).warnings.isEmpty)
        // An explicit value wins, with a warning when a window in use reaches further back.
        let short = try parse(windows + "dedupe_horizon: 10d\n")
        #expect(short.dedupeHorizon.seconds == 10 * 86_400)
        #expect(short.warnings.count == 1 && short.warnings[0].contains("shorter than the longest window in use (30d)"))
        #expect(try parse(windows + "dedupe_horizon: 60d\n").warnings.isEmpty)
    }

    @Test func readsTheUserCacheBudget() throws {
        #expect(try parse("").cacheUsers == 400_000)
        #expect(try parse("ingest:\n  cache_users: 50000\n").cacheUsers == 50_000)
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

    @Test func readsAlertDeliveryAndRefusesWhatCannotBeDelivered() throws {
        let config = try parse("""
            alerts:
              rules:
                - {name: fewer, segment: all, kpi: members, drop: 30%, severity: critical}
              deliver:
                alertmanager: {url: "http://alertmanager:9093/"}
                webhook: {url: "https://hooks.example.com/segmenter", secret: "${HOOK_SECRET}"}
                max_attempts: 3
                resend_interval: 2m
            """, env: ["HOOK_SECRET": "0123456789abcdef0123"])
        #expect(config.alerts.map(\.severity) == ["critical"])
        let delivery = try #require(config.alertDelivery)
        #expect(delivery.alertmanager?.absoluteString == "http://alertmanager:9093")
        #expect(delivery.webhook?.secret == "0123456789abcdef0123")
        #expect(delivery.maxAttempts == 3 && delivery.resendIntervalSeconds == 120 && delivery.retryBackoffSeconds == 1)
        // The list form stays valid, with the default severity
        #expect(try parse("alerts:\n  - {name: a, segment: all, kpi: members, threshold: \"> 1\"}").alerts.map(\.severity) == ["warning"])
        let refused: [(String, String)] = [
            ("deliver:\n    webhook: {url: \"ftp://x\"}", "expected an http(s) URL"),
            ("deliver:\n    webhook: {url: \"http://x\", secret: short}", "at least 16 characters"),
            ("deliver: {}", "deliver needs alertmanager: or webhook:"),
            ("deliver:\n    alertmanager: {url: \"http://x\"}\n    max_attempts: 0", "1...1000"),
        ]
        for (deliver, problem) in refused {
            let yaml = "alerts:\n  rules:\n    - {name: a, segment: all, kpi: members, threshold: \"> 1\", severity: page}\n  " + deliver
            #expect(throws: ConfigError.self) { try parse(yaml) }
            do { _ = try parse(yaml) } catch { #expect("\(error)".contains(problem), "\(error)") }
        }
        do { _ = try parse("alerts:\n  rules:\n    - {name: a, segment: all, kpi: members, threshold: \"> 1\", severity: \"two words\"}") } catch {
            #expect("\(error)".contains("severity must be one word"))
        }
    }

    @Test func volatilityKPIsAreBuiltInWhenAskedFor() throws {
        let yaml = """
            segments:
              - {name: trial, rule: "days_since_signup <= 14"}
            alerts:
              - {name: flapping, segment: trial, kpi: volatility, threshold: "> 0.2"}
            """
        #expect(throws: ConfigError.self) { try parse(yaml) }  // no such KPI without the setting
        let config = try parse("segment_volatility: true\n" + yaml)
        #expect(config.catalog.kpiKeys.filter { $0.segment == "trial" }.map(\.kpi) == ["members", "entered_today", "exited_today", "volatility"])
        #expect(config.alerts.map(\.kpi) == ["volatility"])
        do {
            _ = try parse("kpis:\n  - {name: volatility, sum: \"spend(7d)\"}")
            Issue.record("a KPI named like a built-in one must be refused")
        } catch { #expect("\(error)".contains("reserved for the built-in volatility KPIs")) }
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

/// `reconciliation:` settings, and the shipped example configs staying loadable.
@Suite struct ReconciliationConfigTests {
    func parse(_ yaml: String, env: [String: String] = [:]) throws -> SegmenterConfig {
        try SegmenterConfig.parse(yaml: yaml, source: "/etc/segmenter/test.yaml", environment: env)
    }

    @Test func postgresSettingsWithSecretFromEnvironment() throws {
        let config = try parse("""
            reconciliation:
              warehouse: {type: postgres, host: db, database: dw, user: seg, password: "${PW}"}
              daily_sql: SELECT user_id, day, spend, activities, active_seconds FROM daily;
              cron: "15 */2 * * *"
              lookback: 14d
              lag: 3h
            """, env: ["PW": "s3cret"])
        let settings = try #require(config.reconciliation)
        guard case let .postgres(pg) = settings.target else { Issue.record("not postgres"); return }
        #expect(pg.host == "db" && pg.port == 5432 && pg.password == "s3cret" && pg.tls == .prefer)
        #expect(settings.lookbackDays == 14 && settings.lagSeconds == 3 * 3600)
        #expect(settings.queries.daily.hasSuffix("FROM daily"))  // the trailing semicolon is gone
        #expect(settings.schedule == .cron(try CronExpression("15 */2 * * *")))
        // Closed days at 2026-11-29T02:00Z with a 3 h lag: through 2026-11-27, 14 days.
        let days = try #require(settings.closedDays(now: try RFC3339.parse("2026-11-29T02:00:00Z").get(), calendar: .utc))
        #expect(DayCalendar.isoDate(days.upperBound) == "2026-11-27" && days.count == 14)
    }

    @Test(arguments: [
        ("reconciliation:\n  daily_sql: x\n", "reconciliation needs a warehouse:"),
        ("reconciliation:\n  warehouse: {type: oracle}\n  daily_sql: x\n", "warehouse type must be sqlite, postgres, redshift, bigquery or sqlserver"),
        ("reconciliation:\n  warehouse: {type: bigquery}\n  daily_sql: x\n", "a bigquery warehouse needs project:"),
        ("reconciliation:\n  warehouse: {type: bigquery, project: p, access_token: t, credentials_file: k.json}\n  daily_sql: x\n", "either credentials_file: or access_token:"),
        ("reconciliation:\n  warehouse: {type: bigquery, project: p, host: h}\n  daily_sql: x\n", "unknown key \"host\""),
        ("reconciliation:\n  warehouse: {type: sqlserver, host: h, user: u, encrypt: maybe}\n  daily_sql: x\n", "encrypt must be require, prefer or off"),
        ("reconciliation:\n  warehouse: {type: postgres, host: h, user: u, tls: verify}\n  daily_sql: x\n", "tls must be one of disable, prefer, require, verify-ca, verify-full"),
        ("reconciliation:\n  warehouse: {type: redshift, host: h, user: u, tls: prefer}\n  daily_sql: x\n", "Redshift requires TLS"),
        ("reconciliation:\n  warehouse: {type: sqlite, path: w.db}\n  daily_sql: x\n  cron: \"* * *\"\n", "a cron expression has 5 fields"),
        ("reconciliation:\n  warehouse: {type: sqlite, path: w.db}\n  daily_sql: x\n  every: 1h\n  cron: \"0 * * * *\"\n", "either every: or cron:"),
        ("reconciliation:\n  warehouse: {type: sqlite, path: w.db}\n", "needs daily_sql"),
        ("reconciliation:\n  warehouse: {type: sqlite, path: w.db}\n  daily_sql: x\n  metrics_sql: y\n", "metrics_sql needs metrics:"),
    ])
    func badSettingsAreRejected(yaml: String, message: String) {
        #expect { try parse(yaml) } throws: { "\($0)".contains(message) }
    }

    @Test func bigQueryAndSQLServerSettings() throws {
        let config = try parse("""
            reconciliation:
              warehouse: {type: bigquery, project: acme, dataset: analytics, location: EU, credentials_file: keys/sa.json, page_size: 500}
              daily_sql: x
            """)
        guard case let .bigquery(bq) = try #require(config.reconciliation).target else { Issue.record("not bigquery"); return }
        #expect(bq.project == "acme" && bq.dataset == "analytics" && bq.location == "EU" && bq.pageSize == 500)
        #expect(bq.endpoint == BigQuerySettings.googleEndpoint)
        guard case let .serviceAccountKey(path) = bq.auth else { Issue.record("no key file"); return }
        #expect(path == "/etc/segmenter/keys/sa.json")

        let tds = try parse("""
            reconciliation:
              warehouse: {type: sqlserver, host: sql.internal, database: dw, user: reader, password: "${PW}"}
              daily_sql: x
            """, env: ["PW": "s3cret"])
        guard case let .sqlserver(settings) = try #require(tds.reconciliation).target else { Issue.record("not sqlserver"); return }
        #expect(settings.port == 1433 && settings.encryption == .require && !settings.trustServerCertificate && settings.password == "s3cret")

        let redshift = try parse("reconciliation:\n  warehouse: {type: redshift, host: h, user: u, sslrootcert: ca.pem}\n  daily_sql: x\n")
        guard case let .redshift(pg) = try #require(redshift.reconciliation).target else { Issue.record("not redshift"); return }
        #expect(pg.tls == .verifyFull && pg.port == 5439 && pg.rootCertificateFile == "/etc/segmenter/ca.pem")
    }

    /// What `validate` prints for each warehouse: every statement of a run, with its values as
    /// bound parameters, never in the SQL text.
    @Test(arguments: ["{type: sqlite, path: w.db}", "{type: postgres, host: h, user: u}", "{type: redshift, host: h, user: u}",
                      "{type: bigquery, project: p, access_token: t}", "{type: sqlserver, host: h, user: u}"])
    func everyWarehouseRendersItsStatementsWithBoundValues(warehouse: String) throws {
        let config = try parse("metrics:\n  - name: logins\n    count: type = 'login'\n"
                               + "reconciliation:\n  warehouse: \(warehouse)\n  daily_sql: SELECT * FROM d\n  signups_sql: SELECT * FROM s\n"
                               + "  metrics_sql: SELECT * FROM m\n")
        let statements = try #require(config.reconciliation).renderedStatements
        #expect(statements.map(\.step) == ["per-day totals", "bucket totals of 2026-01-31", "user rows of 2026-01-31", "sign-up buckets",
                                            "sign-ups of bucket 20454", "per-day metric totals", "metric values of 2026-01-31"])
        for statement in statements {
            #expect(!statement.sql.contains("2026-01") && !statement.sql.contains("0a1") && !statement.sql.contains("1767225600")
                    && !statement.sql.contains("20454") && !statement.sql.contains("logins"))
            #expect(statement.sql.contains("FROM d") || statement.sql.contains("FROM s") || statement.sql.contains("FROM m"))
        }
        #expect(statements[6].parameters.joined().contains("2026-01-31") && statements[6].parameters.joined().contains("logins"))
        #expect(statements[2].parameters.joined().contains("2026-01-31") && statements[2].parameters.joined().contains("0a1"))
        let signups = statements[4].parameters.joined()
        #expect(signups.contains("1767225600") || signups.contains("20454"))
    }

    @Test func theAPIRefusesEveryInterfaceWithoutAToken() throws {
        #expect { try parse("http:\n  port: 8080\n  host: 0.0.0.0\n") } throws: { "\($0)".contains("without authentication") }
        #expect { try parse("http:\n  port: 8080\n  auth_token: short\n") } throws: { "\($0)".contains("at least 16 characters") }
        let open = try parse("http:\n  port: 8080\n  host: 0.0.0.0\n  allow_unauthenticated: true\n")
        #expect(open.httpAccess.token == nil && open.httpAccess.allowUnauthenticated)
        let guarded = try parse("http:\n  port: 8080\n  host: 0.0.0.0\n  auth_token: \"${T}\"\n", env: ["T": "0123456789abcdef0123"])
        #expect(guarded.httpAccess.token == "0123456789abcdef0123")
    }

    /// A rule past the limits (issue 25, item 4) is refused at start-up with its file, line and column.
    @Test func anOversizedRuleIsRefusedWithItsPosition() {
        let deep = String(repeating: "not ", count: 40) + "accounts = 1"
        #expect { try parse("segments:\n  - name: deep\n    rule: \(deep)\n") } throws: { error in
            let text = "\(error)"
            return text.contains("test.yaml:3:") && text.contains("nest more than 32")
        }
        let wide = (0..<600).map { "accounts = \($0)" }.joined(separator: " or ")
        #expect { try parse("kpis:\n  - name: wide\n    share: \(wide)\n") } throws: { "\($0)".contains("at most 1000 values and features") }
    }

    /// Config messages as a user meets them (issue 25): a directory is named as such; a config
    /// is linted without its secrets; settings that are valid but unsafe or without effect warn.
    @Test func configFileProblemsAndWarningsAreNamed() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        #expect { try SegmenterConfig.load(path: directory.path) } throws: { "\($0)".contains("this is a directory") }
        let binary = directory.appendingPathComponent("binary.yaml")
        try Data([0xff, 0xfe, 0x00, 0x41]).write(to: binary)
        #expect { try SegmenterConfig.load(path: binary.path) } throws: { "\($0)".contains("UTF-8") }

        let file = directory.appendingPathComponent("secrets.yaml")
        try "http:\n  port: 8080\n  auth_token: ${NO_SUCH_TOKEN_VAR}\nkafka:\n  sasl.password: ${NO_SUCH_PASSWORD_VAR}\n".write(to: file, atomically: true, encoding: .utf8)
        #expect { try SegmenterConfig.load(path: file.path, environment: [:]) } throws: { "\($0)".contains("_VAR is not set") }
        #expect(SegmenterConfig.unsetVariables(inFileAt: file.path, environment: ["NO_SUCH_PASSWORD_VAR": "x"]) == ["NO_SUCH_TOKEN_VAR"])

        let open = try parse("http:\n  port: 8080\n  host: 0.0.0.0\n  allow_unauthenticated: true\n  protect_metrics: true\n")
        #expect(open.warnings.contains { $0.contains("allow_unauthenticated: true") })
        #expect(open.warnings.contains { $0.contains("protect_metrics: true has no effect") })
        let guarded = try parse("http:\n  port: 8080\n  auth_token: \"${T}\"\n  protect_metrics: true\n", env: ["T": "0123456789abcdef0123"])
        #expect(guarded.warnings.isEmpty)
        #expect { try parse("reconciliation:\n  warehouse: {type: sqlite, path: w.db}\n  daily_sql: x\n  cron: \"0 0 31 2 *\"\n") } throws: {
            "\($0)".contains("test.yaml:4:") && "\($0)".contains("can never fire")
        }
    }

    /// `ingest.offset_reset` (or librdkafka's own `auto.offset.reset`) decides what happens to
    /// input Kafka no longer holds (issue 25, item 7), and what it skips is exactly the gap.
    @Test func offsetResetIsExplicitAndItsSkippedRangeExact() throws {
        #expect(try parse("").offsetReset == .earliest)
        #expect(try parse("ingest:\n  offset_reset: none\n").offsetReset == OffsetReset.none)
        #expect(try parse("kafka:\n  auto.offset.reset: largest\n").offsetReset == .latest)
        #expect { try parse("ingest:\n  offset_reset: oldest\n") } throws: { "\($0)".contains("earliest, latest or none") }
        #expect { try parse("kafka:\n  auto.offset.reset: latest\ningest:\n  offset_reset: none\n") } throws: { "\($0)".contains("contradicts") }
        // Retention deleted 100..<250 before it was read: earliest skips exactly that; latest all up to the end.
        #expect(OffsetReset.earliest.resume(requested: 100, low: 250, high: 900)! == (250, 100..<250))
        #expect(OffsetReset.latest.resume(requested: 100, low: 250, high: 900)! == (900, 100..<900))
        #expect(OffsetReset.none.resume(requested: 100, low: 250, high: 900) == nil)
        // A topic recreated shorter: back to its start, nothing skipped (re-read input is deduplicated).
        #expect(OffsetReset.earliest.resume(requested: 5000, low: 0, high: 40)! == (0, 5000..<5000))
    }

    @Test func sqlitePathIsRelativeToTheConfigFile() throws {
        let config = try parse("reconciliation:\n  warehouse: {type: sqlite, path: w.sqlite}\n  daily_sql: x\n")
        guard case let .sqlite(path) = config.reconciliation?.target else { Issue.record("not sqlite"); return }
        #expect(path == "/etc/segmenter/w.sqlite")
    }

    @Test(arguments: ["config/segmenter.yaml", "config/docker.yaml"])
    func shippedConfigsLoad(path: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let config = try SegmenterConfig.load(path: root.appendingPathComponent(path).path,
                                              environment: ["WAREHOUSE_PASSWORD": "x", "SEGMENTER_API_TOKEN": "a-token-of-32-characters-or-so-x"])
        #expect(config.reconciliation != nil && !config.catalog.segments.isEmpty && config.httpPort == 8080)
    }
}
