import ArgumentParser
import Foundation
import KafkaIO
import SegmenterCore
import SegmenterService
import SegmenterStore
import ServiceConfig
import Outputs
import HTTP

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the state without stopping the service.",
        subcommands: [User.self, Segment.self, Alerts.self, State.self, Reconciliation.self]
    )

    struct User: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one user's features and segments as of now, from the instance that owns them.",
            discussion: """
            With several instances, the instance that owns the user's partition answers (found through the group's \
            announcements, asked over its API with http.auth_token): its features and segments, and which instance \
            answered. With --local, or when no instance serves an API, this reads the local state directory and shows \
            the profile and recent days too.
            """)
        @OptionGroup var options: ConfigOption
        @Argument(help: "The user id.") var id: String
        @Option(name: .customLong("window"), help: "Feature windows in days (repeatable; local reads).") var windows: [Int] = FeatureExport.defaultWindows
        @Flag(help: "Read only this instance's state directory.") var local = false

        func validate() throws {
            if let problem = FeatureExport.problem(with: windows) { throw ValidationError("--window: \(problem)") }
        }

        func run() async throws {
            let config = try options.load()
            if !local, let group = GroupView.open(config), !group.reachable.isEmpty {
                // Every character but letters and digits encoded: `/`, `?`, `#`, `%` and `..` too (the API decodes it).
                let path = "/api/users/\(id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? id)?scope=owned"
                if let answer = await group.firstAnswer(path),
                   let object = try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any] {
                    say("user \(id) (partition \(object["partition"] ?? "?")), answered by instance \(answer.instance) at \(answer.api), which owns it")
                    if let features = object["features"],
                       let text = try? JSONSerialization.data(withJSONObject: features, options: [.sortedKeys]) {
                        say("  features: \(String(decoding: text, as: UTF8.self))")
                    }
                    say("  segments: \((object["segments"] as? [String] ?? []).joined(separator: ", "))")
                    return
                }
                guard !group.unanswerable.isEmpty else {
                    throw ValidationError("user \(id) is not in the partitions of any instance of the group (\(group.describeOwners()))")
                }
                GroupView.note("partitions \(group.unanswerable) have no instance with an API: reading the local state directory")
            }
            try showLocally(config)
        }

        private func showLocally(_ config: SegmenterConfig) throws {
            let reader = try StateReader(directory: config.stateDirectory)
            let calendar = config.calendar
            guard let (user, now) = try reader.userAtPairClock(id, firstDay: { FeatureExport.firstDay(now: $0, calendar: calendar, windows: windows) }) else {
                throw ValidationError("user \(id) not found in \(config.stateDirectory.path) (or no events applied yet)")
            }
            say("user \(id) (partition \(user.partition)), now \(now) (the pair's watermark), from the local state directory")
            let p = user.profile
            say("  signup_at: \(p.signupAt?.description ?? "null"), last activity: \(p.lastActivityAt?.description ?? "null")")
            say("  lifetime: spend \(Money.format(cents: p.lifetimeSpendCents)) \(config.currency), \(p.lifetimeActivities) activities")
            for (name, entry) in p.attributes.sorted(by: { $0.key < $1.key }) {
                say("  attr.\(name) = \(entry.value?.json ?? "null (removed)")  [set by \(entry.version.eventID) at \(entry.version.ts)]")
            }
            for (id, entry) in p.accounts.sorted(by: { $0.key < $1.key }) {
                say("  account \(id): \(entry.open ? "open" : "closed")  [\(entry.version.eventID) at \(entry.version.ts)]")
            }
            for (day, aggregate) in user.days.sorted(by: { $0.key < $1.key }) {
                say("  \(DayCalendar.isoDate(day)): spend \(Money.format(cents: aggregate.spendCents)), \(aggregate.activities) activities, \(Double(aggregate.activeMicros) / 60e6) active minutes")
            }
            say("  features: \(FeatureExport.json(user, now: now, calendar: calendar, windows: windows, metrics: config.catalog.metrics))")
            say("  segments: \(try reader.segments(of: id).joined(separator: ", "))")
        }
    }

    struct Segment: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a segment's rule, member count and KPI values as of now, for the whole group.",
            discussion: "The values add up every partition's latest KPI partials as their owners announced them (what the KPI leader publishes from); --local reads only this instance's state directory.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The segment name (or all).") var name: String

        @Flag(help: "Only this instance's state directory (its partitions), not the whole group.") var local = false

        func run() throws {
            let config = try options.load()
            let catalog = config.catalog
            guard catalog.segmentNames.contains(name) else {
                throw ValidationError("unknown segment \(name) (known: \(catalog.segmentNames.joined(separator: ", ")))")
            }
            let partials: [KPIKey: KPIPartial]
            let group = local ? nil : GroupView.open(config)
            if let group, !group.directory.unannounced.isEmpty {
                GroupView.note("partitions \(group.directory.unannounced) have not been announced yet: reading the local state directory")
            }
            if let group, group.directory.unannounced.isEmpty {
                // Every partition's latest announced partials, added up as the KPI leader does.
                partials = group.directory.partials
                let clock = group.directory.announcements.values.compactMap(\.clock).min()
                say("segment \(name) as of \(clock?.description ?? "null"), for the whole group as its instances announced: \(group.describeOwners())")
            } else {
                let reader = try StateReader(directory: config.stateDirectory)
                partials = try reader.kpiPartials()
                say("segment \(name) as of \(try reader.clock()?.description ?? "null"), from the local state directory (its partitions only)")
            }
            say("  rule: \(catalog.segments.first { $0.name == name }?.ruleText ?? "every user seen")")
            for key in catalog.kpiKeys where key.segment == name {
                // Rounded as KPI messages are (1e-6): partials summed in another order differ in the last bits.
                let value = catalog.value(of: key, in: partials).map { ($0 * 1e6).rounded() / 1e6 }
                let definition = catalog.kpis.first { $0.name == key.kpi }.map { " (\($0.kind.rawValue): \($0.expressionText))" } ?? ""
                say("  \(key.kpi): \(value.map(JSONText.number) ?? "null")\(definition)")
            }
        }
    }

    struct Alerts: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List alerts: state, last value and baseline, and their definitions.")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let config = try options.load()
            guard !config.alerts.isEmpty else { say("no alerts configured"); return }
            let states = try AlertStateReader(directory: config.stateDirectory).read()
            for alert in config.alerts {
                let state = states[alert.name]
                say("\(alert.name): \(state?.state ?? "resolved")  (\(alert.segment)/\(alert.kpi) \(alert.conditionDescription), for \(alert.forSeconds)s, min members \(alert.minMembers))")
                say("  value \(state?.value.map(JSONText.number) ?? "null"), baseline \(state?.baseline.map(JSONText.number) ?? "null")"
                    + (state?.pendingSince.map { ", condition holding since \($0)" } ?? ""))
                if state?.state == "firing", let drill = state?.drillDown { say("  drill-down: \(drill)") }
            }
            if let delivery = config.alertDelivery {
                // Written by whichever instance delivers from this state directory (see AlertDeliverer).
                let status = AlertDeliveryStatus.read(directory: config.stateDirectory)
                say("delivery to \(delivery.targetNames.joined(separator: " and ")):" + (status == nil ? " nothing delivered from this state directory yet" : ""))
                for line in status?.summary ?? [] { say("  \(line)") }
            }
        }
    }

    struct State: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Summarise the state: each partition pair's watermark and lag, offsets, counts, the dedupe horizon.")
        @OptionGroup var options: ConfigOption
        @Flag(inversion: .prefixedNo, help: "Ask Kafka for the input partitions' ends to show each pair's lag.") var lag = true

        func run() throws {
            let config = try options.load()
            let reader = try StateReader(directory: config.stateDirectory)
            let offsets = try reader.offsets()
            let counts = try reader.counts()
            say("users: \(counts.users), user-days: \(counts.userDays), remembered event ids: \(counts.seenEvents), outbox rows: \(counts.outbox)")
            for row in offsets { say("offset \(row.topic)[\(row.partition)] next=\(row.next)") }
            // Input Kafka no longer held when it was due (SPEC §7): never silent.
            let skipped = try reader.skippedOffsets()
            for row in skipped {
                say("skipped \(row.topic)[\(row.partition)]: \(row.total) offsets no longer in Kafka when due" + (row.last.map { "; last \($0)" } ?? ""))
            }
            if skipped.isEmpty { say("skipped offsets: none (no input was deleted before it was consumed)") }
            // Time per partition pair (SPEC §3), and what decides whether a late or replayed event
            // is still applied (SPEC §7).
            let pairs = try reader.horizons()
            let ends = lag ? Self.inputEnds(config, partitions: pairs.map(\.partition)) : nil
            let group = pairs.compactMap { pair in pair.clock.map { (pair.partition, $0) } }.min { $0.1 < $1.1 }
            say("now (the group's watermark, what KPIs and alerts use): \(group.map { "\($0.1) (held back by partition \($0.0))" } ?? "null")")
            let horizon = config.dedupeHorizon
            say("dedupe horizon \(DedupeHorizon.describe(horizon.seconds * Instant.nanosPerSecond)): an event older than its "
                + "pair's watermark minus the horizon, or from before its partition's ids are kept, is dead-lettered")
            let waiting = try reader.waitingEvents()
            if lag, ends == nil { say("(lag unknown: Kafka at \(config.kafka.bootstrapServers) did not answer)") }
            for row in pairs {
                let latest = row.eventTimes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                let proof = [row.floor, row.keptFromDay.map(config.calendar.start(of:))].compactMap { $0 }.max()
                let lag = ends.map { ends in
                    offsets.filter { $0.partition == row.partition }.map { max((ends[TopicPartition(topic: $0.topic, partition: $0.partition)] ?? $0.next) - $0.next, 0) }.reduce(0, +)
                }
                let clock = row.clock.map { clock in clock == row.watermark ? "\(clock)" : "\(clock) (events \(row.watermark?.description ?? "none"))" }
                say("partition \(row.partition): watermark \(clock ?? "none yet")" + (lag.map { ", lag \($0) messages" } ?? "")
                    + "; latest event \(latest.isEmpty ? "none" : latest)" + (proof.map { "; ids kept from \($0)" } ?? "")
                    + (waiting[row.partition].map { "; \($0) events waiting for the watermark" } ?? ""))
            }
        }

        /// The input partitions' end offsets, from the broker (nil when it does not answer in a few seconds).
        static func inputEnds(_ config: SegmenterConfig, partitions: [Int32]) -> [TopicPartition: Int64]? {
            guard let producer = try? KafkaProducer(configuration: config.kafka) else { return nil }
            var ends: [TopicPartition: Int64] = [:]
            for partition in partitions {
                for topic in [config.topics.activity, config.topics.billing] {
                    let tp = TopicPartition(topic: topic, partition: partition)
                    guard let (_, high) = try? producer.watermarks(of: tp, timeoutMs: 3000) else { return nil }
                    ends[tp] = high
                }
            }
            return ends
        }
    }
}

extension Inspect {
    struct Reconciliation: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the recent reconciliation runs, newest first, with their reports.")
        @OptionGroup var options: ConfigOption
        @Option(help: "How many runs.") var last = 10
        @Flag(help: "One JSON report per line.") var json = false

        func run() throws {
            let config = try options.load()
            let path = config.stateDirectory.appendingPathComponent(ReconciliationHistory.fileName).path
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("no reconciliation has run yet (\(path) does not exist)") }
            let reports = try ReconciliationHistory(directory: config.stateDirectory, readOnly: true).recent(limit: last)
            for report in reports {
                if json {
                    say(try ReconciliationHistory.encode(report))
                } else {
                    say("\(report.startedAt)  \(report.kind.rawValue) attempt \(report.attempt)  \(report.status.rawValue)")
                    say("  \(report.summary)")
                    if !report.daysDiffering.isEmpty { say("  days differing: \(report.daysDiffering.joined(separator: ", "))") }
                }
            }
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export state.", subcommands: [Features.self])

    struct Features: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every user's features as of now, as JSON lines on stdout, for the whole group.",
            discussion: "Each instance exports the partitions it owns, asked over its API (found through the group's announcements); which instance answered for which partitions goes to stderr. --local, or no instance serving an API, exports this state directory.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Evaluate everyone as of this RFC 3339 instant instead of their partition pair's clock.") var now: String?
        @Option(name: .customLong("window"), help: "Feature windows in days (repeatable, 1...3650).") var windows: [Int] = FeatureExport.defaultWindows

        @Flag(help: "Only this instance's state directory (its partitions), not the whole group.") var local = false

        func validate() throws {
            if let problem = FeatureExport.problem(with: windows) { throw ValidationError("--window: \(problem)") }
        }

        func run() async throws {
            let config = try options.load()
            if !local, let group = GroupView.open(config), !group.reachable.isEmpty {
                if group.unanswerable.isEmpty {
                    try await exportFromGroup(group)
                    return
                }
                GroupView.note("partitions \(group.unanswerable) have no instance with an API: exporting the local state directory only")
            }
            let reader = try StateReader(directory: config.stateDirectory)
            var asOf: Instant?
            if let now {
                guard case let .success(instant) = RFC3339.parse(now) else { throw ValidationError("--now is not an RFC 3339 timestamp") }
                asOf = instant
            } else {
                guard try reader.clock() != nil else { throw ValidationError("no events applied yet") }
            }
            var buffer = ""
            try FeatureExport.export(from: reader, now: asOf, calendar: config.calendar, windows: windows, metrics: config.catalog.metrics) { line in
                buffer += line + "\n"
                if buffer.utf8.count > 1 << 16 { FileHandle.standardOutput.write(Data(buffer.utf8)); buffer = "" }
            }
            FileHandle.standardOutput.write(Data(buffer.utf8))
        }

        /// Each instance exports the partitions it owns; the lines are concatenated.
        private func exportFromGroup(_ group: GroupView) async throws {
            if let now, (try? RFC3339.parse(now).get()) == nil { throw ValidationError("--now is not an RFC 3339 timestamp") }
            var query = "/api/export/features?scope=owned&windows=" + windows.map(String.init).joined(separator: ",")
            if let now { query += "&now=" + (now.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? now) }
            for entry in group.reachable {
                let body = try await group.client.get(entry.api, query, timeout: 300)
                FileHandle.standardOutput.write(body)
                let users = body.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
                GroupView.note("instance \(entry.instance) (\(entry.api)) answered for partitions \(entry.partitions.map(String.init).joined(separator: ",")): \(users) users")
            }
        }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a configuration file and print what it sets, with each rule's warehouse SQL.",
        discussion: "Errors name the file, line and column, with a caret under the problem in the rule."
    )
    @OptionGroup var options: ConfigOption
    @Option(help: "Warehouse dialect of the printed SQL: \(SQLRenderer.Dialect.allCases.map(\.rawValue).joined(separator: ", ")), or all.")
    var dialect = "postgres"

    func validate() throws {
        guard dialect == "all" || SQLRenderer.Dialect(rawValue: dialect) != nil else { throw ValidationError("unknown dialect \(dialect)") }
    }

    func run() throws {
        // A config is linted without its secrets (in CI, say): each unset ${VAR} gets a
        // placeholder here, and a warning says `run` will refuse it until it is set.
        var environment = ProcessInfo.processInfo.environment
        let unset = SegmenterConfig.unsetVariables(inFileAt: options.config, environment: environment)
        for name in unset { environment[name] = "placeholder-for-unset-\(name)" }
        let config = try SegmenterConfig.load(path: options.config, environment: environment)
        say("\(options.config): OK")
        for name in unset { say("  warning: environment variable \(name) is not set (checked with a placeholder; run refuses until it is set)") }
        say("  kafka: \(config.kafka.redacted.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))")
        say("  inputs: \(config.topics.activity), \(config.topics.billing); dead letters: \(config.topics.deadLetters)")
        say("  outputs: \(config.topics.membership)\(config.topics.members.map { " (table: \($0), compacted)" } ?? ""), \(config.topics.kpiDeltas), \(config.topics.alerts); "
            + "internal: \(config.topics.kpiPartials), \(config.topics.stateSnapshots)")
        say("  state: \(config.stateDirectory.path); snapshots to Kafka "
            + (config.stateSnapshotIntervalSeconds > 0 ? "every \(config.stateSnapshotIntervalSeconds) s" : "off")
            + "; time zone \(config.timeZone); clock \(config.clock.rawValue); currency \(config.currency)")
        say("  fx: \(config.fx.keys.sorted().joined(separator: ", ")); dedupe horizon \(DedupeHorizon.describe(config.dedupeHorizon.seconds * Instant.nanosPerSecond))")
        for warning in config.warnings { say("  warning: \(warning)") }
        let dialects = dialect == "all" ? SQLRenderer.Dialect.allCases : [SQLRenderer.Dialect(rawValue: dialect)!]
        for metric in config.catalog.metrics.metrics {
            // As it parsed: every operation parenthesised, so precedence surprises show.
            say("  metric \(metric.name): \(metric.canonical)")
        }
        for note in try MetricDefinitionCheck.notes(config) { say("  note: \(note)") }
        for segment in config.catalog.segments {
            say("  segment \(segment.name): \(segment.ruleText)")
            for d in dialects { say(sqlLine(SQLRenderer(dialect: d).render(segment.rule), dialect: d)) }
        }
        for kpi in config.catalog.kpis {
            say("  kpi \(kpi.name): \(kpi.kind.rawValue) \(kpi.expressionText) for \(kpi.segments?.joined(separator: ", ") ?? "every segment")")
            for d in dialects { say(sqlLine(SQLRenderer(dialect: d).render(kpi.expression), dialect: d)) }
        }
        for alert in config.alerts {
            say("  alert \(alert.name): \(alert.segment)/\(alert.kpi) \(alert.conditionDescription) for \(alert.forSeconds)s, min members \(alert.minMembers)"
                + (alert.resolveAt.map { ", resolves at \(JSONText.number($0))" } ?? ""))
        }
        if let r = config.reconciliation {
            // The warehouse's address without its password (that comes from the environment).
            let target = switch r.target {
            case let .sqlite(path): "sqlite \(path)"
            case let .postgres(p): "postgres \(p.user)@\(p.host):\(p.port)/\(p.database ?? "") tls \(p.tls.rawValue)"
            case let .redshift(p): "redshift \(p.user)@\(p.host):\(p.port)/\(p.database ?? "") tls \(p.tls.rawValue)"
            case let .bigquery(b): "bigquery project \(b.project)\(b.dataset.map { ", dataset \($0)" } ?? "")\(b.location.map { ", location \($0)" } ?? ""), endpoint \(b.endpoint)"
            case let .sqlserver(t): "sqlserver \(t.user)@\(t.host):\(t.port)/\(t.database ?? "") encrypt \(t.encryption.rawValue)"
                + (t.trustServerCertificate ? ", any certificate trusted" : ", certificate verified")
            }
            let schedule = switch r.schedule {
            case let .every(seconds)?: "every \(seconds) s"
            case let .cron(expression)?: "cron \(expression)"
            case nil: "on demand only"
            }
            say("  reconciliation: \(target); \(schedule); lookback \(r.lookbackDays) d, lag \(r.lagSeconds) s; partitioner \(r.partitioner.rawValue); retries \(r.retries)")
            say("    daily: \(r.queries.daily)")
            if let signups = r.queries.signups { say("    signups: \(signups)") }
            say("    statements a run sends (example values; every value a bound parameter):")
            for statement in r.renderedStatements {
                say("    - \(statement.step):")
                say(statement.sql.split(separator: "\n").map { "        " + $0 }.joined(separator: "\n"))
                if !statement.parameters.isEmpty { say("        -- bound: " + statement.parameters.joined(separator: ", ")) }
            }
        }
    }

    private func sqlLine(_ rendered: SQLRenderer.Rendered, dialect: SQLRenderer.Dialect) -> String {
        let parameters = rendered.parameters.enumerated().map { index, literal in
            let value: String = switch literal {
            case .null: "NULL"
            case let .number(n): JSONText.number(n)
            case let .string(s): JSONText.quote(s)
            case let .bool(b): b ? "true" : "false"
            case let .date(d): "date \(DayCalendar.isoDate(d))"
            }
            return "\(index + 1)=\(value)"
        }
        return "    \(dialect.rawValue): \(rendered.sql)" + (parameters.isEmpty ? "" : "   -- bound: " + parameters.joined(separator: ", "))
    }
}
