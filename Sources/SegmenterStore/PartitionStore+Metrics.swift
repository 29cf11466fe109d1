import SegmenterCore
import SQLite

/// A metric whose definition is not the one the state was built with (SPEC §4b): it starts
/// empty from its first use unless rebuilt.
public struct MetricDefinitionChange: Equatable, Sendable, CustomStringConvertible {
    public let name: String
    /// When the state started counting it (nil: it will start with the next run).
    public let since: Instant?

    public var description: String {
        "metric \(name) is new or changed since the state was built: it counts only events applied from "
            + (since.map { "\($0)" } ?? "the next run") + " on; `segmenter rebuild` re-derives it from the input Kafka still holds"
    }
}

extension PartitionStore {
    /// The metrics whose definitions this state did not have when it was built, or had
    /// differently; their first use is recorded, so `validate`, `run` and `inspect` keep saying so
    /// until a rebuild.
    public func metricDefinitionChanges() throws -> [MetricDefinitionChange] {
        MetricDefinitions.changes(segments.catalog.metrics, stored: try text(MetricDefinitions.key), hasEvents: try clock() != nil)
    }

    /// Records the current metric definitions: each keeps the instant it was first used here.
    /// - Parameter rebuilt: a rebuild re-derived every metric from the input: none is new.
    func recordMetricDefinitions(at now: Instant?, rebuilt: Bool = false) throws {
        let stored = rebuilt ? nil : try text(MetricDefinitions.key)
        let record = MetricDefinitions.record(segments.catalog.metrics, stored: stored, now: now, rebuilt: rebuilt)
        if record != (try text(MetricDefinitions.key)) { try putText(MetricDefinitions.key, record) }
    }
}

/// The metric definitions a state was built with, kept as one `meta_text` line per metric:
/// `name key since` (`since`: nanoseconds of first use, `-` for a metric the state had from its
/// first event or was rebuilt with).
public enum MetricDefinitions {
    static let key = "metric_definitions"

    struct Entry: Equatable {
        let key: MetricKey
        let since: Instant?
    }

    static func parse(_ text: String?) -> [String: Entry]? {
        guard let text else { return nil }
        var entries: [String: Entry] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let key = Int64(parts[1]) else { continue }
            entries[String(parts[0])] = Entry(key: MetricKey(rawValue: key), since: Int64(parts[2]).map(Instant.init(nanoseconds:)))
        }
        return entries
    }

    static func record(_ metrics: MetricCatalog, stored: String?, now: Instant?, rebuilt: Bool) -> String {
        let old = parse(stored)
        return metrics.metrics.map { metric in
            let since: Instant?
            if rebuilt || (old == nil && now == nil) {
                since = nil  // a state without events yet, or rebuilt: it has the metric from the start
            } else if let entry = old?[metric.name], entry.key == metric.key {
                since = entry.since
            } else {
                since = now
            }
            return "\(metric.name) \(metric.key.rawValue) \(since.map { String($0.nanoseconds) } ?? "-")"
        }.joined(separator: "\n")
    }

    /// Compares the catalog with what a state recorded: metrics it started counting late, and
    /// (before `run` records them) metrics it will start counting from the next run.
    /// - Parameter stored: the record (nil: a state from before metrics, or a new one).
    /// - Parameter hasEvents: the state has applied events (a state without any misses nothing).
    public static func changes(_ metrics: MetricCatalog, stored text: String?, hasEvents: Bool) -> [MetricDefinitionChange] {
        let stored = parse(text)
        return metrics.metrics.compactMap { metric in
            guard let entry = stored?[metric.name], entry.key == metric.key else {
                return hasEvents ? MetricDefinitionChange(name: metric.name, since: nil) : nil
            }
            return entry.since.map { MetricDefinitionChange(name: metric.name, since: $0) }
        }
    }
}
