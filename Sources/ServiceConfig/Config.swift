import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore
import Yams

/// The service configuration (SPEC §4), read from one YAML file. See `config/segmenter.yaml`.
public struct SegmenterConfig: Sendable {
    public struct Topics: Sendable {
        public var activity = "activity"
        public var billing = "billing"
        public var deadLetters = "segmenter-dlq"
        public var membership = "segment-membership"
        public var kpiDeltas = "segment-kpi-deltas"
        public var alerts = "segment-alerts"
        /// The current membership as a compacted table (key `SEGMENT|USER`, the record on enter,
        /// a tombstone on exit); nil: not written.
        public var members: String?
        /// Internal: each instance's partition KPI partials, read by the KPI leader (compacted).
        /// Named after the consumer group unless set (`<group.id>-kpi-partials`), as Kafka Streams
        /// names its internal topics after the application: another deployment's must never mix in.
        public var kpiPartials = "segmenter-kpi-partials"
        /// Internal: snapshots of the partition databases, so a partition's state can move to an
        /// instance that never held it (compacted; `<group.id>-state` unless set).
        public var stateSnapshots = "segmenter-state"
    }

    public enum Clock: String, Sendable { case event, hybrid }

    /// Where the file came from, for messages.
    public var source = "<defaults>"
    /// librdkafka properties, passed through unchanged (`${VAR}` already expanded).
    public var kafka = KafkaConfiguration(["bootstrap.servers": "127.0.0.1:9092", "group.id": "segmenter"])
    public var topics = Topics()
    public var stateDirectory = URL(fileURLWithPath: "./state")
    public var timeZone = "UTC"
    public var clock = Clock.event
    public var currency = "USD"
    public var fx: [String: ExchangeRate] = [:]
    /// `dedupe_horizon` as configured; nil: the default for the catalog (see `dedupeHorizon`).
    public var explicitDedupeHorizonSeconds: Int64?
    /// The most messages one commit takes (a backlog is read in batches this large; at a steady
    /// rate a batch is whatever arrived since the last poll). Larger batches write each touched
    /// SQLite page and re-evaluate each touched user once for more events: measured in
    /// `scripts/bench`, 200k instead of 50k took 6 segments + 5 KPIs from ~70k to ~128k events/s.
    public var batchMaxEvents = 200_000
    public var batchMaxWaitMs: Int32 = 100
    /// `ingest.offset_reset` (or `kafka.auto.offset.reset`): what to do when a partition's next
    /// offset is no longer in Kafka; whatever it skips is counted and logged (SPEC §7).
    public var offsetReset = OffsetReset.earliest
    /// Users whose state is kept in memory between batches, for the whole instance (split evenly
    /// over the input's partitions). A cached user's batch reads no row; beyond this, users are
    /// read from SQLite again. About 2 KiB each (measured: 2.3 GiB for 1M users cached).
    public var cacheUsers = 400_000
    /// Segments and KPIs (issue 3); `all` and `members` are implicit.
    public var catalog = SegmenterCatalogDefaults.empty
    /// KPI deltas are coalesced to at most one per (segment, kpi) per interval of wall time.
    public var kpiEmitIntervalMs = 1000
    /// The KPI leader's grid of event time (`kpi_step`): KPI values are charted, kept for the
    /// day's end and alerts stepped as of each step's end, the same live and in a catch-up.
    public var kpiGrid = KPIGrid.default
    /// How often each partition database that changed is snapshotted to `topics.stateSnapshots`
    /// (also when the partition is revoked); 0: never. Input older than a partition's latest
    /// snapshot may expire from Kafka without losing its state.
    public var stateSnapshotIntervalSeconds: Int64 = 600
    /// Alerts on KPIs, evaluated at every emit interval.
    public var alerts: [AlertDefinition] = []
    /// Where alert state changes are sent besides `topics.alerts` (`alerts.deliver`); nil: nowhere.
    public var alertDelivery: AlertDeliveryConfig?
    /// Port of the HTTP API (health, readiness, metrics, JSON); nil: no HTTP server.
    public var httpPort: Int?
    /// Warehouse reconciliation (SPEC §6); nil: not configured.
    public var reconciliation: ReconciliationConfig?
    /// `/readyz` fails while the consumer lag (messages, over owned partitions) is above this.
    public var readyMaxLag: Int64?
    /// Address the HTTP API binds (127.0.0.1 by default; 0.0.0.0 in a container).
    public var httpHost = "127.0.0.1"
    /// `http.advertised_url`: how the other instances and `inspect` reach this one's API
    /// (announced with its partitions). Default: `http://HOST:PORT`, the machine's host name
    /// when listening on every interface.
    public var httpAdvertisedURLSetting: String?
    public var httpAdvertisedURL: String? {
        if let httpAdvertisedURLSetting { return httpAdvertisedURLSetting }
        guard let httpPort, httpPort > 0 else { return nil }
        let host = ["0.0.0.0", "::", ""].contains(httpHost) ? ProcessInfo.processInfo.hostName : httpHost
        return "http://\(host.contains(":") ? "[\(host)]" : host):\(httpPort)"
    }
    /// How this instance names itself to the group: its static member id, else host and process.
    public var instanceName: String { kafka["group.instance.id"] ?? "\(ProcessInfo.processInfo.hostName)/\(getpid())" }
    /// Access to the HTTP API (`http.auth_token`, …; see `HTTPAccess`).
    public var httpAccess = HTTPAccess()

    public init() {}

    public var calendar: DayCalendar { DayCalendar(identifier: timeZone)! }

    /// How long event ids are remembered (SPEC §7): as configured, or the longest window any
    /// rule or KPI reads plus one day, at least 7 days.
    public var dedupeHorizon: DedupeHorizon {
        explicitDedupeHorizonSeconds.map(DedupeHorizon.init(seconds:)) ?? DedupeHorizon(longestWindowDays: catalog.longestWindow)
    }

    /// Opens (creating or upgrading) one partition's database with this configuration.
    /// - Parameter partitionCount: the input's partitions, over which `cacheUsers` is split.
    public func openPartition(_ partition: Int32, partitionCount: Int = 1) throws -> PartitionStore {
        try PartitionStore(directory: stateDirectory, partition: partition, calendar: calendar,
                           dedupeHorizonSeconds: dedupeHorizon.seconds,
                           segments: SegmentSetup(catalog: catalog, membershipTopic: topics.membership, membersTopic: topics.members, kpiGrid: kpiGrid),
                           deadLetterTopic: topics.deadLetters, inputTopics: [topics.activity, topics.billing],
                           profileCacheCapacity: cacheUsers / max(partitionCount, 1))
    }

    /// The Kafka properties for a reader of internal topics outside the consumer group
    /// (`purpose` only labels its group id; it commits nothing).
    package func readerKafka(_ purpose: String) -> KafkaConfiguration {
        var properties = kafka.properties
        properties["group.id"] = kafka.groupID + "-" + purpose
        // The static membership identity names this instance's group consumer alone.
        properties["group.instance.id"] = nil
        return KafkaConfiguration(properties)
    }
    public var decoder: EventDecoder { EventDecoder(currency: currency, fxRates: fx) }

    /// Loads and validates a configuration file.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SegmenterConfig {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConfigError(file: path, line: nil, column: nil, problem: "file not found")
        }
        guard !isDirectory.boolValue else {
            throw ConfigError(file: path, line: nil, column: nil, problem: "this is a directory; --config takes the YAML file (e.g. config/segmenter.yaml)")
        }
        guard FileManager.default.isReadableFile(atPath: path), let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: nil, column: nil, problem: "cannot be read (permission denied?)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, column: nil, problem: "cannot read the file as UTF-8 text")
        }
        return try parse(yaml: text, source: path, environment: environment)
    }

    public static func parse(yaml: String, source: String, environment: [String: String]) throws -> SegmenterConfig {
        let reader = try YAMLReader(yaml: yaml, file: source, environment: environment)
        var config = SegmenterConfig()
        config.source = source
        guard let root = reader.root else { return config }
        let top = try reader.mapping(root, allowed: ["kafka", "topics", "state_dir", "time_zone", "clock", "currency", "fx",
                                                     "dedupe_horizon", "ingest", "metrics", "segments", "kpis", "segment_volatility", "kpi_emit_interval", "kpi_step", "alerts", "http", "reconciliation",
                                                     "state_snapshot_interval"])
        if let kafka = top["kafka"] {
            for (key, value) in try reader.mapping(kafka, allowed: nil) {
                config.kafka[key] = try reader.string(value)
                if key == "auto.offset.reset" {
                    guard let policy = OffsetReset(librdkafka: config.kafka[key]!) else {
                        throw reader.error(value, "auto.offset.reset must be earliest, latest or none (error), not \"\(config.kafka[key]!)\"")
                    }
                    config.offsetReset = policy
                }
            }
        }
        var namedTopics: Set<String> = []
        if let topics = top["topics"] {
            let entries = try reader.mapping(topics, allowed: ["activity", "billing", "dead_letters", "membership", "members", "kpi_deltas",
                                                               "alerts", "kpi_partials", "state_snapshots"])
            for (key, node) in entries {
                let name = try reader.string(node)
                guard !name.isEmpty else { throw reader.error(node, "topic name must not be empty") }
                namedTopics.insert(key)
                switch key {
                case "activity": config.topics.activity = name
                case "billing": config.topics.billing = name
                case "dead_letters": config.topics.deadLetters = name
                case "membership": config.topics.membership = name
                case "members": config.topics.members = name
                case "kpi_deltas": config.topics.kpiDeltas = name
                case "kpi_partials": config.topics.kpiPartials = name
                case "state_snapshots": config.topics.stateSnapshots = name
                default: config.topics.alerts = name
                }
            }
        }
        if let node = top["state_dir"] {
            let path = try reader.string(node)
            // Relative to the config file, so `run --config x/y.yaml` works from anywhere.
            let base = URL(fileURLWithPath: source).deletingLastPathComponent()
            config.stateDirectory = path.hasPrefix("/") ? URL(fileURLWithPath: path) : base.appendingPathComponent(path)
        }
        if let node = top["time_zone"] {
            config.timeZone = try reader.string(node)
            guard DayCalendar(identifier: config.timeZone) != nil else {
                throw reader.error(node, "unknown time zone \"\(config.timeZone)\" (expected an IANA name like Europe/Berlin)")
            }
        }
        if let node = top["clock"] {
            let text = try reader.string(node)
            guard let clock = Clock(rawValue: text) else { throw reader.error(node, "clock must be event or hybrid, not \"\(text)\"") }
            config.clock = clock
        }
        if let node = top["currency"] {
            config.currency = try reader.string(node)
            guard config.currency.count == 3, config.currency.allSatisfy({ $0.isASCII && $0.isUppercase }) else {
                throw reader.error(node, "currency must be an ISO 4217 code like USD")
            }
        }
        if let node = top["fx"] {
            for (code, value) in try reader.mapping(node, allowed: nil) {
                let text = try reader.string(value)
                guard let rate = ExchangeRate(text), rate.numerator > 0 else {
                    throw reader.error(value, "fx rate for \(code) must be a positive decimal like 1.08, not \"\(text)\"")
                }
                config.fx[code] = rate
            }
        }
        if let node = top["dedupe_horizon"] { config.explicitDedupeHorizonSeconds = try reader.duration(node) }
        if let node = top["ingest"] {
            let ingest = try reader.mapping(node, allowed: ["batch_max_events", "batch_max_wait_ms", "cache_users", "offset_reset"])
            if let n = ingest["offset_reset"] {
                let text = try reader.string(n)
                guard let policy = OffsetReset(rawValue: text) else {
                    throw reader.error(n, "offset_reset must be earliest, latest or none, not \"\(text)\"")
                }
                if let given = config.kafka["auto.offset.reset"], OffsetReset(librdkafka: given) != policy {
                    throw reader.error(n, "offset_reset: \(text) contradicts kafka.auto.offset.reset: \(given); give one")
                }
                config.offsetReset = policy
            }
            if let n = ingest["cache_users"] { config.cacheUsers = try reader.integer(n, in: 0...100_000_000) }
            if let n = ingest["batch_max_events"] { config.batchMaxEvents = try reader.integer(n, in: 1...1_000_000) }
            if let n = ingest["batch_max_wait_ms"] { config.batchMaxWaitMs = Int32(try reader.integer(n, in: 1...60_000)) }
        }
        let metrics = try top["metrics"].map { try parseMetrics($0, reader: reader) } ?? MetricCatalog()
        config.catalog = try parseCatalog(segments: top["segments"], kpis: top["kpis"], metrics: metrics, reader: reader)
        if let flag = top["segment_volatility"] { config.catalog.volatility = try reader.boolean(flag) }
        if let node = top["http"] {
            let http = try reader.mapping(node, allowed: ["port", "host", "ready_max_lag", "auth_token", "allow_unauthenticated",
                                                          "protect_metrics", "user_api", "advertised_url"])
            if let lag = http["ready_max_lag"] { config.readyMaxLag = Int64(try reader.integer(lag, in: 0...Int.max)) }
            if let port = http["port"] { config.httpPort = try reader.integer(port, in: 0...65535) }
            if let host = http["host"] { config.httpHost = try reader.string(host) }
            if let url = http["advertised_url"] {
                let text = try reader.string(url)
                guard let parsed = URL(string: text), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                    throw reader.error(url, "advertised_url must be an http(s) URL like http://segmenter-0.segmenter:8080, not \"\(text)\"")
                }
                config.httpAdvertisedURLSetting = text.hasSuffix("/") ? String(text.dropLast()) : text
            }
            if let token = http["auth_token"] {
                let text = try reader.string(token)
                guard text.count >= 16 else { throw reader.error(token, "auth_token must be at least 16 characters (put it in the environment: ${SEGMENTER_API_TOKEN})") }
                config.httpAccess.token = text
            }
            if let flag = http["allow_unauthenticated"] { config.httpAccess.allowUnauthenticated = try reader.boolean(flag) }
            if let flag = http["protect_metrics"] { config.httpAccess.protectMetrics = try reader.boolean(flag) }
            if let flag = http["user_api"] { config.httpAccess.userAPI = try reader.boolean(flag) }
            if config.httpPort != nil, let refusal = config.httpAccess.refusal(host: config.httpHost) { throw reader.error(node, refusal) }
        }
        if let node = top["alerts"] { (config.alerts, config.alertDelivery) = try parseAlertsSection(node, catalog: config.catalog, reader: reader) }
        if let node = top["reconciliation"] {
            config.reconciliation = try ReconciliationConfig.parse(node, reader: reader, configFile: source)
            if config.reconciliation?.queries.metrics != nil, config.catalog.metrics.isEmpty, let sql = try reader.mapping(node, allowed: nil)["metrics_sql"] {
                throw reader.error(sql, "metrics_sql needs metrics: to compare (none is defined)")
            }
        }
        if let node = top["state_snapshot_interval"] {
            let text = try reader.string(node)
            config.stateSnapshotIntervalSeconds = text == "off" ? 0 : try reader.duration(node)
        }
        if let node = top["kpi_emit_interval"] {
            let text = try reader.string(node)
            if text.hasSuffix("ms"), let ms = Int(text.dropLast(2)), ms > 0 {
                config.kpiEmitIntervalMs = ms
            } else {
                config.kpiEmitIntervalMs = Int(try reader.duration(node)) * 1000
            }
            guard (1...86_400_000).contains(config.kpiEmitIntervalMs) else {
                throw reader.error(node, "kpi_emit_interval must be 1ms … 1d (e.g. 500ms, 1s), not \"\(text)\"")
            }
        }
        if let node = top["kpi_step"] {
            let seconds = try reader.duration(node)
            guard (1...3600).contains(seconds), 86_400 % seconds == 0 else {
                throw reader.error(node, "kpi_step must divide a day and be 1s … 1h (e.g. 1s, 30s, 1m, 5m), not \"\(try reader.string(node))\"")
            }
            config.kpiGrid = KPIGrid(seconds: seconds)
        }
        let group = config.kafka.groupID
        if !namedTopics.contains("kpi_partials") { config.topics.kpiPartials = group + "-kpi-partials" }
        if !namedTopics.contains("state_snapshots") { config.topics.stateSnapshots = group + "-state" }
        return config
    }

    private static func parseCatalog(segments: Node?, kpis: Node?, metrics: MetricCatalog, reader: YAMLReader) throws -> SegmentCatalog {
        var definitions: [SegmentDefinition] = []
        for item in try segments.map(reader.sequence) ?? [] {
            let entry = try reader.mapping(item, allowed: ["name", "rule", "description"])
            guard let nameNode = entry["name"], let ruleNode = entry["rule"] else {
                throw reader.error(item, "a segment needs a name and a rule")
            }
            let name = try reader.string(nameNode)
            guard name.range(of: "^[A-Za-z0-9_.-]{1,64}$", options: .regularExpression) != nil else {
                throw reader.error(nameNode, "segment name must be 1-64 letters, digits, '_', '-' or '.'")
            }
            guard name != SegmentCatalog.allSegment else { throw reader.error(nameNode, "'all' is the implicit segment of every user") }
            guard !definitions.contains(where: { $0.name == name }) else { throw reader.error(nameNode, "duplicate segment \(name)") }
            definitions.append(try reader.rule(ruleNode, what: "segment \(name)") { (text) throws(RuleError) in
                try SegmentDefinition(name: name, ruleText: text, metrics: metrics)
            })
        }
        let known = Set(definitions.map(\.name) + [SegmentCatalog.allSegment])
        var kpiDefinitions: [KPIDefinition] = []
        for item in try kpis.map(reader.sequence) ?? [] {
            let entry = try reader.mapping(item, allowed: ["name", "sum", "avg", "share", "segments", "description"])
            guard let nameNode = entry["name"] else { throw reader.error(item, "a KPI needs a name") }
            let name = try reader.string(nameNode)
            guard name != SegmentCatalog.membersKPI else { throw reader.error(nameNode, "'members' always exists; pick another name") }
            guard !SegmentVolatility.kpis.contains(name), !name.contains("@") else {
                throw reader.error(nameNode, "\(name) is reserved for the built-in volatility KPIs (segment_volatility: true); pick another name")
            }
            guard !kpiDefinitions.contains(where: { $0.name == name }) else { throw reader.error(nameNode, "duplicate KPI \(name)") }
            let kinds = KPIDefinition.Kind.allCases.filter { entry[$0.rawValue] != nil }
            guard kinds.count == 1, let kind = kinds.first, let expressionNode = entry[kind.rawValue] else {
                throw reader.error(item, "KPI \(name) needs exactly one of sum:, avg:, share:")
            }
            var segments: [String]?
            if let node = entry["segments"] {
                segments = try reader.sequence(node).map { segmentNode in
                    let segment = try reader.string(segmentNode)
                    guard known.contains(segment) else {
                        throw reader.error(segmentNode, "unknown segment \(segment) (known: \(known.sorted().joined(separator: ", ")))")
                    }
                    return segment
                }
            }
            kpiDefinitions.append(try reader.rule(expressionNode, what: "KPI \(name)") { (text) throws(RuleError) in
                try KPIDefinition(name: name, kind: kind, expressionText: text, segments: segments, metrics: metrics)
            })
        }
        return SegmentCatalog(segments: definitions, kpis: kpiDefinitions, metrics: metrics)
    }
}

public enum SegmenterCatalogDefaults {
    public static let empty = SegmentCatalog()
}
