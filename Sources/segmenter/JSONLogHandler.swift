import Foundation
import Logging
import SegmenterCore

/// swift-log handler writing one JSON object per line to stderr (`--log-format json`), for log
/// pipelines: `{"ts","level","label","message", …metadata}`.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        var members: [(String, String)] = [
            ("ts", JSONText.quote(RFC3339.format(Instant.wallClock()))),
            ("level", JSONText.quote(level.rawValue)), ("label", JSONText.quote(label)),
            ("message", JSONText.quote(message.description)),
        ]
        for (key, value) in metadata.merging(extra ?? [:], uniquingKeysWith: { $1 }).sorted(by: { $0.key < $1.key }) {
            members.append((key, JSONText.quote(value.description)))
        }
        FileHandle.standardError.write(Data((JSONText.object(members) + "\n").utf8))
    }
}
