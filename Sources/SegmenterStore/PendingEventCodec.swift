import SegmenterCore

/// Encodes a user's waiting events (`UserSlice.pending`) for their `pending_events` row: a
/// compact binary list, since a catch-up can hold many of them for a while.
///
/// Per event: a body tag, `ts` (little-endian Int64 nanoseconds), `event_id`, then the body's
/// fields. Strings are a little-endian UInt32 length and UTF-8; attribute values a tag (0 null,
/// 1 string, 2 number as Double bits, 3 false, 4 true). An activity or billing event with
/// `properties` has tag 6 or 7 (4 and 5 without) and its properties last, as attributes are.
enum PendingEventCodec {
    static func encode(_ events: [UserEvent]) -> [UInt8] {
        var out = BinaryWriter()
        for event in events {
            func header(_ tag: UInt8) {
                out.byte(tag)
                out.int64(event.ts.nanoseconds)
                out.string(event.eventID)
            }
            switch event.body {
            case let .signup(attributes): header(0); out.attributes(attributes)
            case let .profile(attributes): header(1); out.attributes(attributes)
            case let .accountOpened(account): header(2); out.string(account)
            case let .accountClosed(account): header(3); out.string(account)
            case let .activity(type, micros): header(event.properties.isEmpty ? 4 : 6); out.string(type); out.int64(micros)
            case let .billing(cents): header(event.properties.isEmpty ? 5 : 7); out.int64(cents)
            }
            if !event.properties.isEmpty { out.attributes(event.properties.mapValues(Optional.some)) }
        }
        return out.bytes
    }

    static func decode(_ bytes: [UInt8], userID: String) throws -> [UserEvent] {
        var reader = BinaryReader(bytes, what: "a waiting event's row")
        var events: [UserEvent] = []
        while !reader.atEnd {
            let tag = try reader.byte()
            let ts = Instant(nanoseconds: try reader.int64())
            let eventID = try reader.string()
            let body: UserEvent.Body
            switch tag {
            case 0: body = .signup(attributes: try reader.attributes())
            case 1: body = .profile(attributes: try reader.attributes())
            case 2: body = .accountOpened(accountID: try reader.string())
            case 3: body = .accountClosed(accountID: try reader.string())
            case 4, 6: body = .activity(type: try reader.string(), durationMicros: try reader.int64())
            case 5, 7: body = .billing(cents: try reader.int64())
            default: throw reader.malformed()
            }
            let properties = tag >= 6 ? try reader.attributes().compactMapValues { $0 } : [:]
            events.append(UserEvent(eventID: eventID, userID: userID, ts: ts, body: body, properties: properties))
        }
        return events
    }
}

extension BinaryWriter {
    /// A count, then per name (sorted) the name and a tagged value (0 null, 1 string, 2 number, 3 false, 4 true).
    mutating func attributes(_ attributes: [String: AttributeValue?]) {
        count(attributes.count)
        for (name, value) in attributes.sorted(by: { $0.key < $1.key }) {
            string(name)
            switch value {
            case nil: byte(0)
            case let .string(text)?: byte(1); string(text)
            case let .number(number)?: byte(2); double(number)
            case let .bool(flag)?: byte(flag ? 4 : 3)
            }
        }
    }
}

extension BinaryReader {
    mutating func attributes() throws -> [String: AttributeValue?] {
        var result: [String: AttributeValue?] = [:]
        for _ in 0..<(try count()) {
            let name = try string()
            switch try byte() {
            case 0: result[name] = .some(nil)
            case 1: result[name] = .some(.string(try string()))
            case 2: result[name] = .some(.number(try double()))
            case 3: result[name] = .some(.bool(false))
            case 4: result[name] = .some(.bool(true))
            default: throw malformed()
            }
        }
        return result
    }
}
