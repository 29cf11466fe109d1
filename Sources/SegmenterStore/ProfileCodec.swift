import SegmenterCore
import SQLite

/// Encodes the non-scalar parts of a `UserProfile` for its row.
///
/// Attributes and accounts are JSON text (readable with the sqlite3 shell, parsed by our fast
/// parser); the sorted activity timestamps are a blob of little-endian `Int64`s.
enum ProfileCodec {
    static func encodeAttributes(_ attributes: [String: AttributeEntry]) -> String? {
        guard !attributes.isEmpty else { return nil }
        return JSONText.object(attributes.sorted { $0.key < $1.key }.map { name, entry in
            (name, "[\(entry.value?.json ?? "null"),\(entry.version.ts.nanoseconds),\(JSONText.quote(entry.version.eventID))]")
        })
    }

    static func encodeAccounts(_ accounts: [String: AccountEntry]) -> String? {
        guard !accounts.isEmpty else { return nil }
        return JSONText.object(accounts.sorted { $0.key < $1.key }.map { id, entry in
            (id, "[\(entry.open),\(entry.version.ts.nanoseconds),\(JSONText.quote(entry.version.eventID))]")
        })
    }

    static func encodeInstants(_ instants: [Instant]) -> [UInt8]? {
        guard !instants.isEmpty else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(instants.count * 8)
        for instant in instants { withUnsafeBytes(of: instant.nanoseconds.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }

    static func decodeInstants(_ bytes: [UInt8]?) -> [Instant] {
        guard let bytes, bytes.count >= 8 else { return [] }
        return stride(from: 0, to: bytes.count - 7, by: 8).map { start in
            var value: Int64 = 0
            for k in 0..<8 { value |= Int64(bytes[start + k]) << (8 * k) }
            return Instant(nanoseconds: value)
        }
    }

    /// Each member is `[value, ts, event_id]`.
    static func decodeVersioned(_ text: String?) throws -> [(String, JSONValue, Version)] {
        guard let text else { return [] }
        guard case let .object(members) = try JSONParser.parse(Array(text.utf8)) else { return [] }
        return try members.map { name, value in
            guard case let .array(parts) = value, parts.count == 3, case let .number(ts) = parts[1],
                  let nanos = Int64(ts), case let .string(eventID) = parts[2]
            else { throw SQLiteError(code: 1, message: "corrupt profile entry \(name)", sql: nil) }
            return (name, parts[0], Version(ts: Instant(nanoseconds: nanos), eventID: eventID))
        }
    }

    static func decodeAttributes(_ text: String?) throws -> [String: AttributeEntry] {
        var result: [String: AttributeEntry] = [:]
        for (name, value, version) in try decodeVersioned(text) {
            let attribute: AttributeValue? = switch value {
            case let .string(s): .string(s)
            case let .number(n): Double(n).map(AttributeValue.number)
            case let .bool(b): .bool(b)
            default: nil
            }
            result[name] = AttributeEntry(value: attribute, version: version)
        }
        return result
    }

    static func decodeAccounts(_ text: String?) throws -> [String: AccountEntry] {
        var result: [String: AccountEntry] = [:]
        for (id, value, version) in try decodeVersioned(text) {
            result[id] = AccountEntry(open: value == .bool(true), version: version)
        }
        return result
    }
}
