import Foundation

/// A rule evaluated for one user with the value of every sub-expression, and for each null why
/// it is null: what `explain` prints, so "why is this user in `big_spenders`" needs no SQLite.
///
/// Values come from `RuleExpression.evaluate` itself (the one definition of the semantics); this
/// only walks the tree and names the cause of each null.
public struct RuleExplanation: Equatable, Sendable {
    /// The sub-expression as written in the rule.
    public let text: String
    public let value: RuleValue
    /// Why `value` is null (nil otherwise).
    public let whyNull: String?
    public let parts: [RuleExplanation]

    /// One line per sub-expression, indented by depth: `spend(30d) > 500  → true`.
    public func lines(indent: Int = 0) -> [String] {
        let shown = value.description + (whyNull.map { " (\($0))" } ?? "")
        return [String(repeating: "  ", count: indent) + text + "  → " + shown] + parts.flatMap { $0.lines(indent: indent + 1) }
    }
}

extension RuleValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .null: return "null"
        case let .number(n): return JSONText.number(n)
        case let .string(s): return "'\(s)'"
        case let .bool(b): return b ? "true" : "false"
        case let .date(d): return "date('\(DayCalendar.isoDate(d))')"
        }
    }

    var kind: String {
        switch self {
        case .null: "null"
        case .number: "a number"
        case .string: "a string"
        case .bool: "a boolean"
        case .date: "a date"
        }
    }
}

extension RuleExpression {
    /// Explains this expression, written as `source` (the rule's text), for one user.
    public func explain(source: String, _ features: (Feature) -> FeatureValue) -> RuleExplanation {
        let scalars = Array(source.unicodeScalars)
        func text(_ e: RuleExpression) -> String {
            let span = e.span
            guard span.start >= 0, span.start + span.length <= scalars.count else { return "?" }
            return String(String.UnicodeScalarView(scalars[span.start..<(span.start + span.length)]))
        }
        func walk(_ e: RuleExpression, root: Bool = false) -> RuleExplanation {
            let value = e.evaluate(features)
            let parts = e.operands.map { walk($0) }
            // A span leaves out a closing parenthesis; the whole rule is shown as written.
            let shown = root ? source.trimmingCharacters(in: .whitespaces) : text(e)
            return RuleExplanation(text: shown, value: value, whyNull: value == .null ? e.whyNull(parts, features) : nil, parts: parts)
        }
        return walk(self, root: true)
    }

    /// The direct sub-expressions, in reading order.
    var operands: [RuleExpression] {
        switch self {
        case .literal, .feature: []
        case let .not(x, _), let .negate(x, _), let .isNull(x, _, _): [x]
        case let .binary(_, a, b, _): [a, b]
        case let .inList(v, items, _, _): [v] + items
        case let .between(v, lo, hi, _, _): [v, lo, hi]
        }
    }

    /// Why this expression is null, given its explained operands.
    private func whyNull(_ parts: [RuleExplanation], _ features: (Feature) -> FeatureValue) -> String {
        let nullPart = parts.first { $0.value == .null }.map { "\($0.text) is null" + ($0.whyNull.map { ": \($0)" } ?? "") }
        switch self {
        case .literal: return "written as null"
        case let .feature(feature, _): return feature.whyNull
        case .not, .negate: return nullPart ?? "not a boolean"
        case .isNull: return "never null"
        case let .binary(op, _, _, _):
            if op == .and || op == .or {
                return "\(parts[0].text) is \(parts[0].value), \(parts[1].text) is \(parts[1].value): unknown"
            }
            if let nullPart { return nullPart }
            if op == .divide, parts[1].value == .number(0) { return "division by zero" }
            return "\(parts[0].value.kind) and \(parts[1].value.kind) cannot be \(op.isArithmetic ? "combined" : "compared")"
        case .inList:
            return (nullPart ?? "a value of another type is compared") + ", and no item equals the value"
        case .between:
            if let nullPart { return nullPart }
            return "\(parts[0].value.kind) compared with \(parts[1].value.kind) and \(parts[2].value.kind)"
        }
    }
}

extension Feature {
    /// Why a feature can be null for a user (SPEC §3: null where undefined).
    var whyNull: String {
        switch self {
        case .signupDate, .daysSinceSignup, .hoursSinceSignup, .activitiesSinceSignup: "no sign-up seen for this user"
        case .hoursSinceLastActivity: "no activity seen for this user"
        case let .attribute(name): "the user has no attribute \(name)"
        default: "undefined for this user"
        }
    }
}
