import ArgumentParser
import DevTools
import Foundation
import KafkaIO
import SegmenterCore
import SegmenterService
import SegmenterStore
import ServiceConfig
import ServiceRuntime
import HTTP

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Everything embedded: an in-process Kafka, generated events with an incident, segments and KPIs moving live.",
        discussion: """
        The story: users sign up over 30 days, pay monthly, open accounts and are active — until an \
        incident: everyone who signs up after the incident date has zero activity. Watch the \
        `signed_up_after_incident` segment's zero_activity_share climb and `inactive_new_users` fill up \
        while the event clock moves. Nothing to install beyond the build; state goes to a temporary \
        directory unless --state-dir is given.
        """
    )

    @Option(help: "Number of users.") var users = 3000
    @Option(help: "Number of events.") var events = 90_000
    @Option(help: "Events per second produced into the broker.") var rate = 9_000.0
    @Option(help: "State directory (default: a new temporary one).") var stateDir: String?
    @Option(help: "Port of the dashboard and HTTP API (0: none).") var httpPort = 8080
    @Flag(help: "Exit once the story is told instead of serving the dashboard until stopped (the default when stdout is not a terminal).")
    var exitWhenDone = false

    func run() async throws {
        let logger = makeLogger()
        ServiceMetrics.bootstrap()
        let broker = try DevTools.DevBroker(brokers: 1, partitions: 4,
                                                    topics: ["activity", "billing", "segmenter-dlq", "segment-membership", "segment-kpi-deltas", "segment-alerts"])
        say("== segmenter demo: in-process Kafka at \(broker.bootstrapServers)")

        var options = EventGenerator.Options()
        options.users = users
        options.events = events
        options.duplicateRate = 0.01
        options.invalidRate = 0.003
        let incidentDay = DayNumber(options.start.epochSeconds / 86_400) + 20
        options.incidentSignupsFrom = Instant(seconds: Int64(incidentDay) * 86_400)
        options.incidentUntil = Instant(seconds: Int64(incidentDay + 6) * 86_400)
        let incidentDate = DayCalendar.isoDate(incidentDay)

        let stateDirectory = stateDir.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("segmenter-demo-\(getpid())")
        var config = try SegmenterConfig.parse(yaml: Self.configYAML(incidentDate: incidentDate), source: "demo.yaml",
                                               environment: [:])
        config.kafka = KafkaConfiguration(["bootstrap.servers": broker.bootstrapServers, "group.id": "segmenter-demo"])
        config.stateDirectory = stateDirectory
        config.httpPort = httpPort > 0 ? httpPort : nil
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        let warehousePath = stateDirectory.appendingPathComponent("warehouse.sqlite").path
        config.reconciliation?.target = .sqlite(path: warehousePath)
        say("== state in \(stateDirectory.path); incident: users signing up from \(incidentDate) have no activity until \(DayCalendar.isoDate(incidentDay + 6))")
        for metric in config.catalog.metrics.metrics { say("   metric \(metric.name): \(metric.canonical)") }
        for segment in config.catalog.segments { say("   segment \(segment.name): \(segment.ruleText)") }
        for alert in config.alerts { say("   alert \(alert.name) on \(alert.segment)/\(alert.kpi)") }

        let messages = EventGenerator(options: options).messages()
        let corrections = try DemoWarehouse.write(messages, config: config, path: warehousePath)
        say("== local SQLite warehouse \(warehousePath): the same events, plus \(corrections.refunds.count) refunds of $300 "
            + "issued in the billing system on \(corrections.refunds.first.map { DayCalendar.isoDate($0.day) } ?? "-") that the billing topic never carried, "
            + "and \(corrections.logins.count) users' logins on \(corrections.logins.first.map { DayCalendar.isoDate($0.day) } ?? "-") the activity topic never carried")
        say("== producing \(messages.count) events for \(users) users over \(options.days) days at \(Int(rate))/s "
            + "(\(messages.filter { !$0.valid }.count) invalid, \(messages.filter(\.duplicate).count) duplicates)\n")
        var producer: KafkaProducer? = try KafkaProducer(configuration: config.kafka)
        Thread.detachNewThread { [rate, producer] in
            guard let producer else { return }
            do {
                try GeneratorRunner.produce(messages, producer: producer, activityTopic: "activity", billingTopic: "billing",
                                            ratePerSecond: rate)
            } catch { say("generator failed: \(error)") }
        }

        // The same service group as `run`: HTTP, reconciliation, ingest, stopped in reverse.
        let services = SegmenterServices(config: config, logger: logger)
        let stop = StopSignal()  // Ctrl-C, or the service group ended (a failure)
        let handlers = installSignalHandlers { stop.stop(); Task { await services.stop() } }
        let running = Task {
            defer { stop.stop() }
            try await services.run()
        }
        if let port = config.httpPort { say("== dashboard: http://127.0.0.1:\(port)/  (JSON: /api/segments, /api/alerts, /api/reconciliation; Prometheus: /metrics)") }
        let started = Date()
        var idleTicks = 0
        var alertStates: [String: String] = [:]
        while !stop.isStopped {
            try? await Task.sleep(for: .seconds(1))
            let c = services.ingest.counters
            let table = (try? KPITable.render(config: config)) ?? "(waiting for the first batch)"
            say(String(format: "[%5.1fs] consumed %6d  applied %6d  duplicates %4d  dead-lettered %3d  membership changes %5d  timers fired %5d",
                       Date().timeIntervalSince(started), c.consumed, c.applied, c.duplicates, c.deadLettered,
                       c.membershipChanges, c.timersFired))
            say(table)
            for (name, row) in (try? AlertStateReader(directory: stateDirectory).read()) ?? [:] where alertStates[name] != row.state {
                if alertStates[name] != nil || row.state == "firing" {
                    say("  >>> ALERT \(name) is \(row.state.uppercased()): value \(row.value.map(JSONText.number) ?? "null")")
                }
                alertStates[name] = row.state
            }
            idleTicks = c.consumed >= messages.count ? idleTicks + 1 : 0
            if idleTicks >= 2 { break }
        }
        if let reconciliation = services.reconciliation, !stop.isStopped {
            say("\n== reconciliation against the warehouse (closed days, per-day totals first, then users of the days that differ)")
            let report = await reconciliation.runNow()
            say("   \(report.status.rawValue): \(report.summary)")
            try? await Task.sleep(for: .milliseconds(1500))  // one KPI emit interval
            say(try KPITable.render(config: config))
        }
        // In a terminal, keep the dashboard up; piped into a file or another program, finish.
        if let port = config.httpPort, !exitWhenDone, isatty(STDOUT_FILENO) == 1, !stop.isStopped {
            say("\n== the story is told; the dashboard stays at http://127.0.0.1:\(port)/ until you press Ctrl-C")
            while !stop.isStopped { try? await Task.sleep(for: .milliseconds(200)) }
        }
        await services.stop()
        do { try await running.value } catch { say("ingest failed: \(error)") }
        _ = handlers
        producer = nil  // clients go before the broker they talk to

        say("== a few membership changes and KPI deltas as published")
        let changes = try readTopic("segment-membership", bootstrap: broker.bootstrapServers, limit: 1_000_000)
        for line in changes.prefix(3) { say(line) }
        say("== abandoned checkouts entering by time: 24 h after checkout_started with no purchase (metric abandoned_checkouts)")
        for line in changes.filter({ $0.contains("\"segment\":\"abandoned_checkout\"") && $0.contains("\"cause\":\"time\"") }).prefix(3) { say(line) }
        for line in try readTopic("segment-kpi-deltas", bootstrap: broker.bootstrapServers, limit: 4) { say(line) }
        say("== KPI deltas caused by the reconciliation (cause reconciliation)")
        for line in try readTopic("segment-kpi-deltas", bootstrap: broker.bootstrapServers, limit: 100_000).filter({ $0.contains("\"cause\":\"reconciliation\"") }).prefix(6) {
            say(line)
        }
        say("== alerts as published on segment-alerts")
        for line in try readTopic("segment-alerts", bootstrap: broker.bootstrapServers, limit: 4) { say(line) }
        say("== a dead letter")
        for line in try readTopic("segmenter-dlq", bootstrap: broker.bootstrapServers, limit: 1) { say(line) }
        try previewAndExplain(config, incidentDate: incidentDate)
        withExtendedLifetime(broker) {}
    }

    /// `segmenter preview` and `segmenter explain` on the state the demo built.
    func previewAndExplain(_ config: SegmenterConfig, incidentDate: String) throws {
        var tightened = try SegmenterConfig.parse(yaml: Self.configYAML(incidentDate: incidentDate)
            .replacingOccurrences(of: "spend(30d) > 500", with: "spend(30d) > 1000"), source: "tightened.yaml", environment: [:])
        tightened.stateDirectory = config.stateDirectory
        say("== segmenter preview: what `big_spenders: spend(30d) > 1000` would do before it ships (nothing written)")
        let preview = try ConfigPreviewRunner.run(new: tightened, current: config)
        for line in preview.lines(current: config.catalog) where !line.hasPrefix("  ") || line.contains("would") || line.contains("(changes)") {
            say(line)
        }
        let reader = try StateReader(directory: config.stateDirectory)
        guard let user = preview.preview.segments["big_spenders"]?.exiting.first,
              let explanation = try UserExplainer.explain(user, config: config, reader: reader) else { return }
        say("== segmenter explain \(user): why they are in each segment today, and what time changes next")
        for line in explanation.lines(calendar: config.calendar) { say(line) }
    }

    static func configYAML(incidentDate: String) -> String {
        """
        metrics:
          - name: logins
            count: type = 'login'
          - name: features_used
            count_distinct: prop.feature
            where: type in ('session', 'feature_used')
          - name: abandoned_checkouts
            sequence: {first: type = 'checkout_started', then_not: type = 'purchase', within: 24h}
        segments:
          - name: signed_up_after_incident
            rule: signup_date >= date('\(incidentDate)')
          - name: big_spenders
            rule: spend(30d) > 500
          - name: multi_account
            rule: accounts >= 2
          - name: inactive_new_users
            rule: hours_since_signup >= 24 and activities_since_signup = 0
          - name: frequent_logins
            rule: logins(7d) >= 3
          - name: explorers
            rule: features_used(7d) >= 4
          - name: abandoned_checkout
            rule: abandoned_checkouts(2d) >= 1
        kpis:
          - name: avg_daily_minutes
            avg: avg_daily_minutes(7d)
          - name: zero_activity_share
            share: activities_since_signup = 0
          - name: spend_30d
            sum: spend(30d)
        alerts:
          - name: incident_cohort_inactive
            segment: signed_up_after_incident
            kpi: zero_activity_share
            threshold: "> 0.9"
            for: 6h
            min_members: 20
            resolve_at: 0.5
          - name: inactive_share_rise
            segment: all
            kpi: zero_activity_share
            rise: 100%
            baseline_days: 3
            for: 2h
            min_members: 100
        fx:
          EUR: 1.08
        kpi_emit_interval: 500ms
        reconciliation:
          warehouse: {type: sqlite, path: warehouse.sqlite}
          daily_sql: \(DemoWarehouse.dailySQL)
          signups_sql: \(DemoWarehouse.signupsSQL)
          metrics_sql: \(DemoWarehouse.metricsSQL)
          lookback: 35d
          lag: 1h
          partitioner: consistent_random
        """
    }

    private func readTopic(_ topic: String, bootstrap: String, limit: Int) throws -> [String] {
        let consumer = try KafkaConsumer(configuration: KafkaConfiguration([
            "bootstrap.servers": bootstrap, "group.id": "demo-reader-\(topic)-\(getpid())"]), listener: TopicReader())
        try consumer.subscribe(to: [topic])
        var lines: [String] = []
        let deadline = Date().addingTimeInterval(10)
        while lines.count < limit, Date() < deadline {
            for message in try consumer.poll(maxMessages: limit - lines.count, timeoutMs: 200).messages {
                lines.append(String(decoding: message.payload, as: UTF8.self))
            }
        }
        return lines
    }
}

/// The live segments × KPIs table, read from the state like `inspect segment` does.
enum KPITable {
    static func render(config: SegmenterConfig) throws -> String {
        let reader = try StateReader(directory: config.stateDirectory)
        let partials = try reader.kpiPartials()
        let now = try reader.clock()
        let catalog = config.catalog
        let columns = [SegmentCatalog.membersKPI] + catalog.kpis.map(\.name)
        var lines = ["  event time \(now?.description ?? "-")",
                     "  " + "segment".padding(toLength: 26, withPad: " ", startingAt: 0)
                        + columns.map { $0.padding(toLength: 20, withPad: " ", startingAt: 0) }.joined()]
        for segment in catalog.segmentNames {
            let cells = columns.map { kpi -> String in
                let value = catalog.kpis(for: segment).contains { $0.name == kpi } || kpi == SegmentCatalog.membersKPI
                    ? catalog.value(of: KPIKey(segment: segment, kpi: kpi), in: partials) : nil
                let text = value.map { $0 == $0.rounded() && abs($0) < 1e12 ? String(Int64($0)) : String(format: "%.3f", $0) } ?? "null"
                return text.padding(toLength: 20, withPad: " ", startingAt: 0)
            }
            lines.append("  " + segment.padding(toLength: 26, withPad: " ", startingAt: 0) + cells.joined())
        }
        return lines.joined(separator: "\n")
    }
}

/// Starts every partition at one end; for reading output topics.
final class TopicReader: RebalanceListener, @unchecked Sendable {
    let start: StartOffset
    init(start: StartOffset = .beginning) { self.start = start }
    func partitionsAssigned(_ partitions: [TopicPartition]) -> [TopicPartition: StartOffset] {
        Dictionary(uniqueKeysWithValues: partitions.map { ($0, start) })
    }
    func partitionsRevoked(_ partitions: [TopicPartition]) {}
}
