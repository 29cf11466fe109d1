/// An attribute value: SPEC §2 allows strings, numbers and booleans.
public enum AttributeValue: Sendable, Hashable, Codable {
    case string(String)
    case number(Double)
    case bool(Bool)

    /// JSON text of the value.
    public var json: String {
        switch self {
        case let .string(s): return JSONText.quote(s)
        case let .number(n): return JSONText.number(n)
        case let .bool(b): return b ? "true" : "false"
        }
    }
}

/// One valid input event, decoded and normalised (money in cents of the configured currency).
public struct UserEvent: Sendable, Equatable {
    public enum Body: Sendable, Equatable {
        /// Attribute changes; a nil value removes the attribute.
        case signup(attributes: [String: AttributeValue?])
        case profile(attributes: [String: AttributeValue?])
        case accountOpened(accountID: String)
        case accountClosed(accountID: String)
        /// Any other activity type; duration kept in whole microseconds so sums stay exact.
        case activity(type: String, durationMicros: Int64)
        /// A charge (positive) or refund (negative), converted to the configured currency.
        case billing(cents: Int64)
    }

    public let eventID: String
    public let userID: String
    public let ts: Instant
    public let body: Body
    /// `properties` of an activity or billing event (SPEC §2), read by metric filters (§4b);
    /// empty for the other types, whose `prop.*` are null.
    public let properties: [String: AttributeValue]

    public init(eventID: String, userID: String, ts: Instant, body: Body, properties: [String: AttributeValue] = [:]) {
        self.eventID = eventID
        self.userID = userID
        self.ts = ts
        self.body = body
        self.properties = properties
    }

    /// The event's `type` as sent (`charge` or `refund` for billing).
    public var type: String {
        switch body {
        case .signup: "signup"
        case .profile: "profile"
        case .accountOpened: "account_opened"
        case .accountClosed: "account_closed"
        case let .activity(type, _): type
        case let .billing(cents): cents < 0 ? "refund" : "charge"
        }
    }

    /// The input topic kind it came from.
    public var kind: InputKind { if case .billing = body { .billing } else { .activity } }
}

/// Which input stream a message came from; the two follow different rules (SPEC §2).
public enum InputKind: String, Sendable {
    case activity
    case billing
}
