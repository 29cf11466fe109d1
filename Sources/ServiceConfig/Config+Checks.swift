import Foundation
import SegmenterCore

/// What `validate` says of a config besides its errors: settings that are valid but probably
/// not meant, and the `${VAR}`s a config names that are unset.
extension SegmenterConfig {
    /// Settings that are valid but probably not meant; `validate` prints them and `run` logs them.
    public var warnings: [String] {
        var warnings: [String] = []
        let window = Int64(catalog.longestWindow) * 86_400
        if let explicit = explicitDedupeHorizonSeconds, explicit < window {
            warnings.append("dedupe_horizon (\(DedupeHorizon.describe(explicit * Instant.nanosPerSecond))) is shorter than the longest "
                + "window in use (\(catalog.longestWindow)d): an event older than the horizon is dead-lettered although that window still "
                + "counts its day (the default, \(DedupeHorizon.describe(DedupeHorizon(longestWindowDays: catalog.longestWindow).seconds * Instant.nanosPerSecond)), covers it)")
        }
        // An abandoned instance counts on its first event's day, `within` after it: a window
        // that ends before then never holds it.
        for (metric, windows) in catalog.timeTriggers.metricWindows {
            guard case let .sequence(within, true) = metric.shape, let n = windows.first,
                  Int64(n) * 86_400 * Instant.nanosPerSecond <= within else { continue }
            warnings.append("\(metric.name)(\(n)d) can never count an abandoned instance: one counts on its first event's day, "
                + "\(DedupeHorizon.describe(within)) later, when that day has left a \(n)-day window (use \(metric.name)(\(Int(within / (86_400 * Instant.nanosPerSecond)) + 1)d) or more)")
        }
        if httpPort != nil, httpAccess.allowUnauthenticated, httpAccess.token == nil, !["127.0.0.1", "::1", "localhost"].contains(httpHost) {
            warnings.append("http.allow_unauthenticated: true: anyone who reaches \(httpHost):\(httpPort!) reads every segment, KPI and user "
                + "(set http.auth_token: ${SEGMENTER_API_TOKEN} instead)")
        }
        if httpPort != nil, httpAccess.protectMetrics, httpAccess.token == nil {
            warnings.append("http.protect_metrics: true has no effect without http.auth_token: /metrics stays open")
        }
        return warnings
    }

    /// The `${VAR}`s the file at `path` names that `environment` does not set (for `validate`,
    /// which lints a config without its secrets by giving them placeholders).
    public static func unsetVariables(inFileAt path: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        guard let text = FileManager.default.contents(atPath: path).flatMap({ String(data: $0, encoding: .utf8) }) else { return [] }
        var names: [String] = []
        var rest = text[...]
        while let start = rest.range(of: "${"), let end = rest.range(of: "}", range: start.upperBound..<rest.endIndex) {
            let name = String(rest[start.upperBound..<end.lowerBound])
            if environment[name] == nil, !names.contains(name) { names.append(name) }
            rest = rest[end.upperBound...]
        }
        return names
    }
}
