import Foundation
import Metrics

/// How delivery to each target is going, for `inspect alerts` (a file in the state directory,
/// rewritten after each change) and for metrics.
public struct AlertDeliveryStatus: Codable, Sendable, Equatable {
    public struct Target: Codable, Sendable, Equatable {
        public var delivered = 0
        /// Tries that failed (each retry counts).
        public var failedAttempts = 0
        /// Changes given up on after `max_attempts` or a refusal, sent to the dead-letter topic.
        public var deadLettered = 0
        public var lastDeliveredAt: String?
        public var lastError: String?
        public var lastErrorAt: String?
    }

    public var targets: [String: Target] = [:]
    /// The change being retried, if any ("topic[partition]@offset alert state").
    public var retrying: String?
    public var updatedAt: String?
    /// When this state directory first delivered (ms since the epoch): with nothing committed,
    /// changes older than that are history, not news.
    public var deliveringSinceMs: Int64?
    /// Per "topic/partition", the next offset to deliver as this directory last saw it: where
    /// delivery resumes if the group's committed offset is gone (Kafka expires the offsets of a
    /// group left empty for `offsets.retention.minutes`, 7 days by default).
    public var nextOffsets: [String: Int64]?

    static let fileName = "alert-delivery.json"

    public static func read(directory: URL) -> AlertDeliveryStatus? {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(fileName).path) else { return nil }
        return try? JSONDecoder().decode(AlertDeliveryStatus.self, from: data)
    }

    /// Written whole to a temporary file and renamed, so a reader never sees half of it.
    func write(directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try encoder.encode(self).write(to: directory.appendingPathComponent(Self.fileName), options: .atomic)
    }

    enum Outcome: String { case delivered, failed, deadLettered = "dead_lettered" }

    mutating func record(_ outcome: Outcome, target: String, at now: String, error: String? = nil) {
        var entry = targets[target] ?? Target()
        switch outcome {
        case .delivered:
            entry.delivered += 1
            entry.lastDeliveredAt = now
        case .failed:
            entry.failedAttempts += 1
            entry.lastError = error
            entry.lastErrorAt = now
        case .deadLettered:
            entry.deadLettered += 1
            entry.lastError = error ?? entry.lastError
            entry.lastErrorAt = now
        }
        targets[target] = entry
        updatedAt = now
        Counter(label: "segmenter_alert_deliveries_total", dimensions: [("target", target), ("outcome", outcome.rawValue)]).increment()
    }

    /// Lines for `inspect alerts`.
    public var summary: [String] {
        targets.keys.sorted().map { name in
            let t = targets[name]!
            var line = "\(name): \(t.delivered) delivered, \(t.failedAttempts) failed tries, \(t.deadLettered) dead-lettered"
            if let at = t.lastDeliveredAt { line += "; last delivered \(at)" }
            if let error = t.lastError, let at = t.lastErrorAt { line += "; last error \(at): \(error)" }
            return line
        } + (retrying.map { ["retrying \($0)"] } ?? [])
    }
}
