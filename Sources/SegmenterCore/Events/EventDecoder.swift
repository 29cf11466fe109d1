/// Why a message is not a valid event: the text a person reads in the dead-letter topic.
public struct DecodeFailure: Error, Equatable, Sendable, CustomStringConvertible, ExpressibleByStringInterpolation {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public init(stringLiteral value: String) { self.reason = value }
    public var description: String { reason }
}

/// Turns raw message bytes into a `UserEvent`, enforcing every rule of SPEC §2 and §8.
///
/// Pure: the wall clock (for the 24 h future limit) and the fx table are parameters.
public struct EventDecoder: Sendable {
    public static let maximumMessageBytes = 1 << 20
    public static let maximumFutureSkew: Int64 = 24 * 3600

    public let currency: String
    public let fxRates: [String: ExchangeRate]

    public init(currency: String = "USD", fxRates: [String: ExchangeRate] = [:]) {
        self.currency = currency
        self.fxRates = fxRates
    }

    public func decode(_ payload: [UInt8], from kind: InputKind, wallClock: Instant) -> Result<UserEvent, DecodeFailure> {
        do {
            return .success(try decodeOrThrow(payload, from: kind, wallClock: wallClock))
        } catch {
            return .failure(error)
        }
    }

    func decodeOrThrow(_ payload: [UInt8], from kind: InputKind, wallClock: Instant) throws(DecodeFailure) -> UserEvent {
        guard payload.count <= Self.maximumMessageBytes else {
            throw DecodeFailure("message is \(payload.count) bytes, over the 1 MiB limit")
        }
        let root: JSONValue
        do { root = try JSONParser.parse(payload) } catch { throw DecodeFailure("not valid JSON: \(error)") }
        guard case .object = root else { throw DecodeFailure("payload is \(root.kindDescription), expected a JSON object") }

        let eventID = try requiredString(root, "event_id", length: 1...128)
        let userID = try requiredString(root, "user_id", length: 1...128)
        let type = try requiredString(root, "type", length: 1...64)
        let tsText = try requiredString(root, "ts", length: 1...64)
        let ts: Instant
        switch RFC3339.parse(tsText) {
        case let .success(instant): ts = instant
        case let .failure(problem): throw DecodeFailure("field \"ts\" is not an RFC 3339 timestamp: \(problem)")
        }
        if ts.nanoseconds > wallClock.nanoseconds + Self.maximumFutureSkew * Instant.nanosPerSecond {
            throw DecodeFailure("field \"ts\" (\(tsText)) is more than 24 h ahead of the wall clock (\(wallClock))")
        }
        let body = switch kind {
        case .activity: try activityBody(root, type: type)
        case .billing: try billingBody(root, type: type)
        }
        switch body {
        case .activity, .billing:
            return UserEvent(eventID: eventID, userID: userID, ts: ts, body: body, properties: try properties(root))
        default:
            return UserEvent(eventID: eventID, userID: userID, ts: ts, body: body)
        }
    }

    private func activityBody(_ root: JSONValue, type: String) throws(DecodeFailure) -> UserEvent.Body {
        switch type {
        case "signup":
            let attributes = root["attributes"].flatMap { $0 == .null ? nil : $0 }
            return .signup(attributes: try attributes.map(decodeAttributes) ?? [:])
        case "profile":
            guard let attributes = root["attributes"], attributes != .null else {
                throw DecodeFailure("profile event needs field \"attributes\" (an object)")
            }
            return .profile(attributes: try decodeAttributes(attributes))
        case "account_opened":
            return .accountOpened(accountID: try requiredString(root, "account_id", length: 1...128))
        case "account_closed":
            return .accountClosed(accountID: try requiredString(root, "account_id", length: 1...128))
        default:
            var micros: Int64 = 0
            if let duration = root["duration_s"], duration != .null {
                guard case let .number(text) = duration, let seconds = Double(text) else {
                    throw DecodeFailure("field \"duration_s\" is \(duration.kindDescription), expected a number")
                }
                guard seconds >= 0, seconds <= 86_400 else {
                    throw DecodeFailure("field \"duration_s\" is \(text), expected 0...86400")
                }
                micros = Int64((seconds * 1_000_000).rounded())
            }
            return .activity(type: type, durationMicros: micros)
        }
    }

    private func billingBody(_ root: JSONValue, type: String) throws(DecodeFailure) -> UserEvent.Body {
        let sign: Int64
        switch type {
        case "charge": sign = 1
        case "refund": sign = -1
        default: throw DecodeFailure("unknown billing type \"\(type)\" (expected charge or refund)")
        }
        guard let amount = root["amount"] else { throw DecodeFailure("billing event needs field \"amount\"") }
        let amountText: String
        switch amount {
        case let .number(text), let .string(text): amountText = text
        default: throw DecodeFailure("field \"amount\" is \(amount.kindDescription), expected a number or decimal string")
        }
        var cents: Int64
        switch Money.cents(fromDecimal: amountText) {
        case let .success(value): cents = value
        case let .failure(problem): throw problem
        }
        guard cents > 0 else { throw DecodeFailure("amount \(amountText) must be greater than 0") }
        let code = try requiredString(root, "currency", length: 1...16)
        guard code.utf8.count == 3, code.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
            throw DecodeFailure("currency \"\(code)\" is not an ISO 4217 code like USD")
        }
        if code != currency {
            guard let rate = fxRates[code] else {
                throw DecodeFailure("currency \(code) has no exchange rate to \(currency) in the fx table")
            }
            guard let converted = Money.convert(cents: cents, rate: rate), converted <= Money.maximumCents else {
                throw DecodeFailure("amount \(amountText) \(code) is too large")
            }
            cents = converted
        }
        return .billing(cents: sign * cents)
    }

    private func decodeAttributes(_ value: JSONValue) throws(DecodeFailure) -> [String: AttributeValue?] {
        guard case let .object(members) = value else {
            throw DecodeFailure("field \"attributes\" is \(value.kindDescription), expected an object")
        }
        guard members.count <= Self.maximumAttributesPerEvent else {
            throw DecodeFailure("\(members.count) attributes; an event may set at most \(Self.maximumAttributesPerEvent)")
        }
        var result: [String: AttributeValue?] = [:]
        for (name, member) in members {
            guard (1...128).contains(name.unicodeScalars.count) else {
                throw DecodeFailure("attribute name must be 1...128 characters")
            }
            switch member {
            case .null: result[name] = .some(nil)
            case let .bool(b): result[name] = .bool(b)
            case let .string(s):
                guard s.unicodeScalars.count <= Self.maximumAttributeScalars else {
                    throw DecodeFailure("attribute \"\(name)\" is longer than \(Self.maximumAttributeScalars) characters")
                }
                result[name] = .string(s)
            case let .number(text):
                guard let number = Double(text), number.isFinite else {
                    throw DecodeFailure("attribute \"\(name)\" is not a finite number")
                }
                result[name] = .number(number)
            case .array, .object:
                throw DecodeFailure("attribute \"\(name)\" is \(member.kindDescription), expected a string, number, boolean or null")
            }
        }
        return result
    }

    /// Attributes one event may set, and the longest string value (SPEC §2's bounds on
    /// properties, applied to attributes too: one user held 240,000 before there were any).
    public static let maximumAttributesPerEvent = 256
    public static let maximumAttributeScalars = 4096

    public static let maximumProperties = 64
    public static let maximumPropertyScalars = 1024

    /// `properties` (SPEC §2): string, number or bool values, at most 64, names
    /// `[A-Za-z0-9_]{1,64}`, strings up to 1,024 scalars. Absent or `null`: none.
    private func properties(_ root: JSONValue) throws(DecodeFailure) -> [String: AttributeValue] {
        guard let value = root["properties"], value != .null else { return [:] }
        guard case let .object(members) = value else {
            throw DecodeFailure("field \"properties\" is \(value.kindDescription), expected an object")
        }
        var result: [String: AttributeValue] = [:]
        for (name, member) in members {
            guard Self.isPropertyName(name) else {
                throw DecodeFailure("property name \(JSONText.quote(String(name.prefix(80)))) must be 1-64 of A-Z, a-z, 0-9 and _")
            }
            switch member {
            case let .bool(b): result[name] = .bool(b)
            case let .string(s):
                guard s.unicodeScalars.count <= Self.maximumPropertyScalars else {
                    throw DecodeFailure("property \"\(name)\" is \(s.unicodeScalars.count) characters long, over the \(Self.maximumPropertyScalars) limit")
                }
                result[name] = .string(s)
            case let .number(text):
                guard let number = Double(text), number.isFinite else {
                    throw DecodeFailure("property \"\(name)\" is not a finite number")
                }
                result[name] = .number(number)
            case .null:
                throw DecodeFailure("property \"\(name)\" is null (leave it out instead)")
            case .array, .object:
                throw DecodeFailure("property \"\(name)\" is \(member.kindDescription), expected a string, number or boolean")
            }
        }
        guard result.count <= Self.maximumProperties else {
            throw DecodeFailure("\"properties\" has \(result.count) keys, over the \(Self.maximumProperties) limit")
        }
        return result
    }

    static func isPropertyName(_ name: String) -> Bool {
        // ASCII only, so bytes are scalars (and no Unicode property table is consulted).
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
        }
    }

    private func requiredString(_ root: JSONValue, _ name: String, length: ClosedRange<Int>) throws(DecodeFailure) -> String {
        guard let value = root[name], value != .null else { throw DecodeFailure("missing field \"\(name)\"") }
        guard case let .string(text) = value else {
            throw DecodeFailure("field \"\(name)\" is \(value.kindDescription), expected a string")
        }
        // ASCII ids (nearly all) have as many scalars as bytes, and the byte count is free.
        let bytes = text.utf8.count
        let count = bytes <= length.upperBound && bytes >= 4 * length.lowerBound ? bytes : text.unicodeScalars.count
        guard length.contains(count) else {
            throw DecodeFailure("field \"\(name)\" has \(count) characters, expected \(length.lowerBound)...\(length.upperBound)")
        }
        return text
    }
}
