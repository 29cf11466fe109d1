import SegmenterCore

/// Encodes a user's waiting events (`UserSlice.pending`) for their `pending_events` row: a
/// compact binary list, since a catch-up can hold many of them for a while.
///
/// Per event: a body tag, `ts` (little-endian Int64 nanoseconds), `event_id`, then the body's
/// fields. Strings are a little-endian UInt32 length and UTF-8; attribute values a tag (0 null,
/// 1 string, 2 number as Double bits, 3 false, 4 true).
enum PendingEventCodec {
    static func encode(_ events: [UserEvent]) -> [UInt8] {
        var out: [UInt8] = []
        for event in events {
            switch event.body {
            case let .signup(attributes): out.append(0); header(event, &out); put(attributes, &out)
            case let .profile(attributes): out.append(1); header(event, &out); put(attributes, &out)
            case let .accountOpened(account): out.append(2); header(event, &out); put(account, &out)
            case let .accountClosed(account): out.append(3); header(event, &out); put(account, &out)
            case let .activity(type, micros): out.append(4); header(event, &out); put(type, &out); put(micros, &out)
            case let .billing(cents): out.append(5); header(event, &out); put(cents, &out)
            }
        }
        return out
    }

    struct Malformed: Error, CustomStringConvertible {
        var description: String { "a waiting event's row is malformed" }
    }

    static func decode(_ bytes: [UInt8], userID: String) throws -> [UserEvent] {
        var reader = Reader(bytes: bytes)
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
            case 4: body = .activity(type: try reader.string(), durationMicros: try reader.int64())
            case 5: body = .billing(cents: try reader.int64())
            default: throw Malformed()
            }
            events.append(UserEvent(eventID: eventID, userID: userID, ts: ts, body: body))
        }
        return events
    }

    private static func header(_ event: UserEvent, _ out: inout [UInt8]) {
        put(event.ts.nanoseconds, &out)
        put(event.eventID, &out)
    }

    private static func put(_ value: Int64, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func put(_ text: String, _ out: inout [UInt8]) {
        let utf8 = Array(text.utf8)
        withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: utf8)
    }

    private static func put(_ attributes: [String: AttributeValue?], _ out: inout [UInt8]) {
        withUnsafeBytes(of: UInt32(attributes.count).littleEndian) { out.append(contentsOf: $0) }
        for (name, value) in attributes.sorted(by: { $0.key < $1.key }) {
            put(name, &out)
            switch value {
            case nil: out.append(0)
            case let .string(text)?: out.append(1); put(text, &out)
            case let .number(number)?: out.append(2); put(Int64(bitPattern: number.bitPattern), &out)
            case let .bool(flag)?: out.append(flag ? 4 : 3)
            }
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0
        var atEnd: Bool { position >= bytes.count }

        mutating func byte() throws -> UInt8 {
            guard position < bytes.count else { throw Malformed() }
            defer { position += 1 }
            return bytes[position]
        }

        mutating func int64() throws -> Int64 {
            guard position + 8 <= bytes.count else { throw Malformed() }
            var value: UInt64 = 0
            for k in 0..<8 { value |= UInt64(bytes[position + k]) << (8 * k) }
            position += 8
            return Int64(bitPattern: value)
        }

        mutating func count() throws -> Int {
            guard position + 4 <= bytes.count else { throw Malformed() }
            var value: UInt32 = 0
            for k in 0..<4 { value |= UInt32(bytes[position + k]) << (8 * k) }
            position += 4
            return Int(value)
        }

        mutating func string() throws -> String {
            let length = try count()
            guard position + length <= bytes.count else { throw Malformed() }
            defer { position += length }
            return String(decoding: bytes[position..<position + length], as: UTF8.self)
        }

        mutating func attributes() throws -> [String: AttributeValue?] {
            var result: [String: AttributeValue?] = [:]
            for _ in 0..<(try count()) {
                let name = try string()
                switch try byte() {
                case 0: result[name] = .some(nil)
                case 1: result[name] = .some(.string(try string()))
                case 2: result[name] = .some(.number(Double(bitPattern: UInt64(bitPattern: try int64()))))
                case 3: result[name] = .some(.bool(false))
                case 4: result[name] = .some(.bool(true))
                default: throw Malformed()
                }
            }
            return result
        }
    }
}
