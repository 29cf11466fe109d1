import Foundation
import KafkaIO
import SegmenterCore

/// The service configuration (SPEC §4), read from one YAML file. See `config/segmenter.yaml`.
public struct SegmenterConfig: Sendable {
    public struct Topics: Sendable {
        public var activity = "activity"
        public var billing = "billing"
        public var deadLetters = "segmenter-dlq"
        public var membership = "segment-membership"
        public var kpiDeltas = "segment-kpi-deltas"
        public var alerts = "segment-alerts"
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
    public var dedupeHorizonSeconds: Int64 = 7 * 86_400
    public var batchMaxEvents = 50_000
    public var batchMaxWaitMs: Int32 = 100

    public init() {}

    public var calendar: DayCalendar { DayCalendar(identifier: timeZone)! }
    public var decoder: EventDecoder { EventDecoder(currency: currency, fxRates: fx) }

    /// Loads and validates a configuration file.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SegmenterConfig {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError(file: path, line: nil, column: nil, problem: "file not found")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
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
                                                     "dedupe_horizon", "ingest"])
        if let kafka = top["kafka"] {
            for (key, value) in try reader.mapping(kafka, allowed: nil) {
                config.kafka[key] = try reader.string(value)
            }
        }
        if let topics = top["topics"] {
            let entries = try reader.mapping(topics, allowed: ["activity", "billing", "dead_letters", "membership", "kpi_deltas", "alerts"])
            for (key, node) in entries {
                let name = try reader.string(node)
                guard !name.isEmpty else { throw reader.error(node, "topic name must not be empty") }
                switch key {
                case "activity": config.topics.activity = name
                case "billing": config.topics.billing = name
                case "dead_letters": config.topics.deadLetters = name
                case "membership": config.topics.membership = name
                case "kpi_deltas": config.topics.kpiDeltas = name
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
        if let node = top["dedupe_horizon"] { config.dedupeHorizonSeconds = try reader.duration(node) }
        if let node = top["ingest"] {
            let ingest = try reader.mapping(node, allowed: ["batch_max_events", "batch_max_wait_ms"])
            if let n = ingest["batch_max_events"] { config.batchMaxEvents = try reader.integer(n, in: 1...1_000_000) }
            if let n = ingest["batch_max_wait_ms"] { config.batchMaxWaitMs = Int32(try reader.integer(n, in: 1...60_000)) }
        }
        return config
    }
}
