import Foundation
import Yams

/// `alerts.deliver`: where alert state changes go besides the alerts topic (Alertmanager, a
/// webhook), and how hard delivery tries before a change is dead-lettered.
///
/// ```yaml
/// alerts:
///   rules: [...]
///   deliver:
///     alertmanager: {url: http://alertmanager:9093}
///     webhook: {url: https://hooks.example.com/segmenter, secret: ${SEGMENTER_WEBHOOK_SECRET}}
///     max_attempts: 8        # per change and target, then the dead-letter topic
///     retry_backoff: 1s      # doubled after each failure, at most 60 s
///     resend_interval: 60s   # firing alerts are sent to Alertmanager again this often
/// ```
public struct AlertDeliveryConfig: Sendable, Equatable {
    public struct Webhook: Sendable, Equatable {
        public var url: URL
        /// Signs each body (`X-Segmenter-Signature: sha256=HMAC`); nil: unsigned.
        public var secret: String?
    }

    /// Alertmanager's base URL; alerts go to `{url}/api/v2/alerts`.
    public var alertmanager: URL?
    public var webhook: Webhook?
    /// Tries per change and target before the change goes to the dead-letter topic.
    public var maxAttempts = 8
    /// The wait after the first failed try; doubled after each one, at most `maxBackoffSeconds`.
    public var retryBackoffSeconds: Int64 = 1
    public var maxBackoffSeconds: Int64 = 60
    /// Alertmanager resolves an alert it has not heard of for its `resolve_timeout` (5 min by
    /// default), so a firing alert is sent again well within that.
    public var resendIntervalSeconds: Int64 = 60
    /// One request's limit, connecting included.
    public var timeoutSeconds: Int64 = 10

    /// The targets' names, as metrics and `inspect alerts` show them.
    public var targetNames: [String] { (alertmanager == nil ? [] : ["alertmanager"]) + (webhook == nil ? [] : ["webhook"]) }

    static func parse(_ node: Node, reader: YAMLReader) throws -> AlertDeliveryConfig {
        let section = try reader.mapping(node, allowed: ["alertmanager", "webhook", "max_attempts", "retry_backoff", "resend_interval", "timeout"])
        var config = AlertDeliveryConfig()
        if let node = section["alertmanager"] {
            let entry = try reader.mapping(node, allowed: ["url"])
            guard let url = entry["url"] else { throw reader.error(node, "alertmanager needs url: (like http://alertmanager:9093)") }
            config.alertmanager = try httpURL(url, reader: reader)
        }
        if let node = section["webhook"] {
            let entry = try reader.mapping(node, allowed: ["url", "secret"])
            guard let url = entry["url"] else { throw reader.error(node, "webhook needs url:") }
            var webhook = Webhook(url: try httpURL(url, reader: reader))
            if let secretNode = entry["secret"] {
                let secret = try reader.string(secretNode)
                guard secret.count >= 16 else {
                    throw reader.error(secretNode, "webhook secret must be at least 16 characters (put it in the environment: ${SEGMENTER_WEBHOOK_SECRET})")
                }
                webhook.secret = secret
            }
            config.webhook = webhook
        }
        guard config.alertmanager != nil || config.webhook != nil else {
            throw reader.error(node, "deliver needs alertmanager: or webhook: (or both)")
        }
        if let n = section["max_attempts"] { config.maxAttempts = try reader.integer(n, in: 1...1000) }
        if let n = section["retry_backoff"] { config.retryBackoffSeconds = try positive(n, reader: reader, at: 3600) }
        if let n = section["resend_interval"] { config.resendIntervalSeconds = try positive(n, reader: reader, at: 3600) }
        if let n = section["timeout"] { config.timeoutSeconds = try positive(n, reader: reader, at: 300) }
        return config
    }

    private static func httpURL(_ node: Node, reader: YAMLReader) throws -> URL {
        let text = try reader.string(node)
        guard let url = URL(string: text.hasSuffix("/") ? String(text.dropLast()) : text), ["http", "https"].contains(url.scheme ?? ""),
              url.host != nil else {
            throw reader.error(node, "expected an http(s) URL, not \"\(text)\"")
        }
        return url
    }

    private static func positive(_ node: Node, reader: YAMLReader, at most: Int64) throws -> Int64 {
        let seconds = try reader.duration(node)
        guard seconds >= 1, seconds <= most else { throw reader.error(node, "expected a duration from 1s to \(most)s") }
        return seconds
    }
}
