import Foundation

/// The explanation and feature values as Codable types: the API and `explain --json` encode
/// the same shapes, instead of assembling JSON text.
extension FeatureValue: Encodable {
    /// Money as a number with its cents exact (a Decimal), dates as `"2026-03-01"`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case let .number(n): if n.isFinite { try container.encode(n) } else { try container.encodeNil() }
        case let .money(cents): try container.encode(Decimal(cents) / 100)
        case let .string(s): try container.encode(s)
        case let .bool(b): try container.encode(b)
        case let .date(d): try container.encode(DayCalendar.isoDate(d))
        }
    }
}

/// Named values with dynamic keys (feature names), encoded in the order given unless the
/// encoder sorts keys.
public struct OrderedFields<Value: Encodable>: Encodable {
    public let fields: [(String, Value)]

    public init(_ fields: [(String, Value)]) { self.fields = fields }

    struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, value) in fields { try container.encode(value, forKey: Key(stringValue: name)) }
    }
}

extension RuleExplanation: Encodable {
    enum CodingKeys: String, CodingKey { case text, value, whyNull = "why_null", parts }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(text, forKey: .text)
        try container.encode(value.description, forKey: .value)
        if let whyNull { try container.encode(whyNull, forKey: .whyNull) } else { try container.encodeNil(forKey: .whyNull) }
        try container.encode(parts, forKey: .parts)
    }
}

extension UserExplanation.NextChange: Encodable {
    enum CodingKeys: String, CodingKey { case at, reason, changes }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(instant.description, forKey: .at)
        try container.encode(reason, forKey: .reason)
        try container.encode(changes, forKey: .changes)
    }
}

extension UserExplanation.Segment: Encodable {
    enum CodingKeys: String, CodingKey { case segment, member, rule, explanation, features }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .segment)
        try container.encode(member, forKey: .member)
        if rule == nil { try container.encodeNil(forKey: .rule) } else { try container.encode(ruleText, forKey: .rule) }
        if let rule { try container.encode(rule, forKey: .explanation) } else { try container.encodeNil(forKey: .explanation) }
        try container.encode(OrderedFields(features.map { ($0.name, $0.value) }), forKey: .features)
    }
}

extension UserExplanation: Encodable {
    enum CodingKeys: String, CodingKey {
        case userID = "user_id", asOf = "as_of", segments, nextChange = "next_change", nextMembershipChange = "next_membership_change"
        case history, waiting, metrics
    }

    /// One entry of `history`.
    struct HistoryEntry: Encodable {
        let segment: String
        let change: String
        let asOf: String
        let cause: String
        enum CodingKeys: String, CodingKey { case segment, change, asOf = "as_of", cause }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(userID, forKey: .userID)
        try container.encode(now.description, forKey: .asOf)
        try container.encode(segments, forKey: .segments)
        if let nextChange { try container.encode(nextChange, forKey: .nextChange) } else { try container.encodeNil(forKey: .nextChange) }
        if let nextMembershipChange {
            try container.encode(nextMembershipChange, forKey: .nextMembershipChange)
        } else {
            try container.encodeNil(forKey: .nextMembershipChange)
        }
        try container.encode(history.map { HistoryEntry(segment: $0.segment, change: $0.entered ? "enter" : "exit", asOf: $0.asOf.description,
                                                        cause: $0.cause.rawValue) }, forKey: .history)
        try container.encode(waiting.map(\.description), forKey: .waiting)
        try container.encode(metrics, forKey: .metrics)
    }

    /// JSON for `explain --json` (the API encodes the same value), keys sorted. Throws rather
    /// than print something that is not the explanation.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
