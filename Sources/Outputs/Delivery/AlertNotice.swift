import Crypto
import Foundation
import SegmenterCore

/// One alert state change as the alerts topic carries it (SPEC §5), and what each delivery
/// target is sent for it. Pure: the bodies depend on the message, the alert's config and the
/// dashboard's address only.
struct AlertNotice: Decodable, Sendable, Equatable {
    struct Contributor: Decodable, Sendable, Equatable {
        var dimension: String
        var group: String
        var members: Int64
        var contribution: Double
    }

    var alert: String
    var segment: String
    var kpi: String
    /// `firing` or `resolved`.
    var state: String
    var value: Double?
    var baseline: Double?
    var threshold: Double?
    var members: Int64?
    var asOfText: String
    var drillDown: [Contributor]?
    /// The group's watermark when the state changed (event time), parsed from `asOfText`.
    var asOf = Instant(nanoseconds: 0)
    /// The message exactly as published: the webhook's body starts from it.
    var published: [UInt8] = []

    var firing: Bool { state == "firing" }

    private enum CodingKeys: String, CodingKey {
        case alert, segment, kpi, state, value, baseline, threshold, members, asOfText = "as_of", drillDown = "drill_down"
    }

    /// Nil for a message that is not an alert state change (nothing to deliver).
    init?(payload: [UInt8]) {
        guard let decoded = try? JSONDecoder().decode(AlertNotice.self, from: Data(payload)), ["firing", "resolved"].contains(decoded.state),
              case let .success(asOf) = RFC3339.parse(decoded.asOfText) else { return nil }
        self = decoded
        self.asOf = asOf
        published = payload
    }

    /// The dashboard's chart of the alert's segment.
    func chartLink(dashboard: String?) -> String? {
        guard let dashboard else { return nil }
        let segment = self.segment.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=#+"))) ?? self.segment
        return "\(dashboard)/#chart=\(segment)"
    }

    /// The webhook's body: the published message with the alert's severity and chart link added.
    func webhookBody(severity: String, dashboard: String?) -> [UInt8] {
        var body = published
        while let last = body.last, last != UInt8(ascii: "}") { body.removeLast() }
        guard !body.isEmpty else { return published }
        body.removeLast()
        let link = chartLink(dashboard: dashboard).map(JSONText.quote) ?? "null"
        body += Array(",\"severity\":\(JSONText.quote(severity)),\"dashboard\":\(link)}".utf8)
        return body
    }

    /// One entry of Alertmanager's `POST /api/v2/alerts` body (`postableAlert`). A firing alert
    /// has no `endsAt` (Alertmanager keeps it for its `resolve_timeout` after the last send); a
    /// resolved one ends when it resolved, or now if event time is ahead of the wall clock.
    func alertmanagerAlert(severity: String, dashboard: String?, startsAt: Instant?, now: Instant) -> [String: Any] {
        var labels = ["alertname": alert, "segment": segment, "kpi": kpi, "severity": severity]
        labels = labels.filter { !$0.value.isEmpty }
        var annotations: [String: String] = [
            "summary": "\(segment)/\(kpi) is \(value.map(JSONText.number) ?? "unknown")"
                + (threshold.map { " (threshold \(JSONText.number($0)))" } ?? ""),
            "value": value.map(JSONText.number) ?? "null",
        ]
        if let baseline { annotations["baseline"] = JSONText.number(baseline) }
        if let threshold { annotations["threshold"] = JSONText.number(threshold) }
        if let members { annotations["members"] = String(members) }
        if let drillDown, !drillDown.isEmpty {
            annotations["drill_down"] = drillDown.prefix(3).map {
                "\($0.dimension)=\($0.group) (\($0.members) members, \(JSONText.number(($0.contribution * 1000).rounded() / 10))% of the change)"
            }.joined(separator: "; ")
        }
        var entry: [String: Any] = ["labels": labels]
        if let link = chartLink(dashboard: dashboard) {
            annotations["dashboard"] = link
            entry["generatorURL"] = link
        }
        entry["annotations"] = annotations
        entry["startsAt"] = (startsAt ?? asOf).description
        if !firing { entry["endsAt"] = min(asOf, now).description }
        return entry
    }

    /// `X-Segmenter-Signature`: HMAC-SHA256 of the body with the webhook's secret, as GitHub's
    /// `X-Hub-Signature-256` spells it (`sha256=` and lowercase hex).
    static func signature(of body: [UInt8], secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }
}
