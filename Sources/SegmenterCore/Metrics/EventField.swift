/// A field of one event, as a metric's filter or expression reads it (SPEC §4b).
public enum EventField: Hashable, Sendable, CustomStringConvertible {
    /// The event's `type` (`charge`/`refund` for billing).
    case type
    /// `'activity'` or `'billing'`.
    case topic
    /// A billing amount in the configured currency, refunds negative; null for activity.
    case amount
    /// An activity's `duration_s`; null for billing and the profile-changing types.
    case durationSeconds
    /// `prop.NAME`: null when the event has no such property.
    case property(String)

    public var description: String {
        switch self {
        case .type: "type"
        case .topic: "topic"
        case .amount: "amount"
        case .durationSeconds: "duration_s"
        case let .property(name): "prop.\(name)"
        }
    }

    /// The names a filter reads fields by (besides `prop.NAME`).
    static let byName: [String: EventField] = ["type": .type, "topic": .topic, "amount": .amount, "duration_s": .durationSeconds]

    var type: RuleType {
        switch self {
        case .type, .topic: .string
        case .amount, .durationSeconds: .number
        case .property: .any
        }
    }
}

extension UserEvent {
    /// What a metric's filter or expression reads of this event: its fields, and null for
    /// anything else (a filter never reads a user's features). Pass as `expression.evaluate(event.field)`.
    public func field(_ feature: Feature) -> FeatureValue {
        if case let .event(field) = feature { return value(of: field) }
        return .null
    }

    /// The value of `field` in this event (SPEC §4b: on `signup`, `profile` and `account_*`
    /// events `amount`, `duration_s` and `prop.*` are null).
    public func value(of field: EventField) -> FeatureValue {
        switch field {
        case .type: return .string(type)
        case .topic: return .string(kind.rawValue)
        case .amount:
            if case let .billing(cents) = body { return .money(cents: cents) }
            return .null
        case .durationSeconds:
            if case let .activity(_, micros) = body { return .number(Double(micros) / 1_000_000) }
            return .null
        case let .property(name):
            switch properties[name] {
            case nil: return .null
            case let .string(s)?: return .string(s)
            case let .number(n)?: return .number(n)
            case let .bool(b)?: return .bool(b)
            }
        }
    }
}
