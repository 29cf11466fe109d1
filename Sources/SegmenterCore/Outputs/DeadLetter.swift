import Foundation

/// The `segmenter-dlq` message for an invalid input message (SPEC §5, §8).
public enum DeadLetter {
    /// Payloads over 1 MiB keep only this much, with `payload_truncated` and `payload_bytes`.
    public static let keptPrefixBytes = 64 * 1024

    public static func json(reason: String, sourceTopic: String, partition: Int32, offset: Int64,
                            payload: [UInt8], receivedAt: Instant) -> String {
        let truncated = payload.count > EventDecoder.maximumMessageBytes
        let kept = truncated ? Array(payload.prefix(keptPrefixBytes)) : payload
        let payloadText: String
        let encoding: String
        if let text = String(validating: kept, as: UTF8.self) {
            payloadText = JSONText.quote(text)
            encoding = "utf8"
        } else {
            payloadText = JSONText.quote(Data(kept).base64EncodedString())
            encoding = "base64"
        }
        var members: [(String, String)] = [
            ("error", JSONText.quote(reason)),
            ("source_topic", JSONText.quote(sourceTopic)),
            ("partition", String(partition)),
            ("offset", String(offset)),
            ("payload", payloadText),
            ("payload_encoding", JSONText.quote(encoding)),
            ("received_at", JSONText.quote(RFC3339.format(receivedAt))),
        ]
        if truncated {
            members.append(("payload_truncated", "true"))
            members.append(("payload_bytes", String(payload.count)))
        }
        return JSONText.object(members)
    }
}
