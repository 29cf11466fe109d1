/// Where a piece of rule text sits, for error messages with a caret.
public struct SourceSpan: Equatable, Sendable {
    public let start: Int   // offset in Unicode scalars
    public let length: Int
    public init(start: Int, length: Int) {
        self.start = start
        self.length = max(length, 1)
    }
    static func covering(_ a: SourceSpan, _ b: SourceSpan) -> SourceSpan {
        SourceSpan(start: a.start, length: b.start + b.length - a.start)
    }
}

/// A rule that does not parse or type-check, with the position of the problem.
public struct RuleError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public let span: SourceSpan
    public init(_ message: String, at span: SourceSpan) {
        self.message = message
        self.span = span
    }
    public var description: String { "\(message) (column \(span.start + 1))" }

    /// The rule with a caret line under the problem:
    /// ```
    /// spend(30d) = 'x'
    ///              ^~~
    /// ```
    public func caret(in text: String) -> String {
        let underline = String(repeating: " ", count: span.start) + "^" + String(repeating: "~", count: max(span.length - 1, 0))
        return text + "\n" + underline
    }
}

/// What a rule, filter or KPI expression may be, refused at start-up with its position (the
/// README's "Limits"): every walk of the tree is recursive, so its depth is bounded.
public enum RuleLimits {
    /// Unicode scalars of the text.
    public static let maxLength = 16_384
    /// Values and features (literals, features, list items).
    public static let maxTerms = 1_000
    /// Parentheses, `not` and unary minus inside one another.
    public static let maxNesting = 32
    /// Levels of the parsed tree (long `and`/`or` chains are balanced, see `RuleParser.chain`).
    public static let maxDepth = 64
    /// Operands of one `and`/`or` chain kept left-deep, as written.
    public static let leftDeepChain = 16
}

/// Binary operators of the rule language, loosest binding first.
public enum BinaryOperator: String, Sendable, CaseIterable {
    case or, and
    case equal = "=", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case plus = "+", minus = "-", times = "*", divide = "/"

    var isComparison: Bool {
        switch self {
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual: true
        default: false
        }
    }
    var isArithmetic: Bool {
        switch self {
        case .plus, .minus, .times, .divide: true
        default: false
        }
    }
    var isLogical: Bool { self == .and || self == .or }
}

/// A literal value in a rule.
public enum RuleLiteral: Equatable, Sendable {
    case null
    case number(Double)
    case string(String)
    case bool(Bool)
    case date(DayNumber)
}

/// The typed tree of a rule. Built only by `RuleParser`; never turned back into SQL by
/// pasting text (see `SQLRenderer`, which binds every literal as a parameter).
public indirect enum RuleExpression: Equatable, Sendable {
    case literal(RuleLiteral, SourceSpan)
    case feature(Feature, SourceSpan)
    case not(RuleExpression, SourceSpan)
    case negate(RuleExpression, SourceSpan)
    case binary(BinaryOperator, RuleExpression, RuleExpression, SourceSpan)
    case isNull(RuleExpression, negated: Bool, SourceSpan)
    case inList(RuleExpression, [RuleExpression], negated: Bool, SourceSpan)
    case between(RuleExpression, RuleExpression, RuleExpression, negated: Bool, SourceSpan)

    public var span: SourceSpan {
        switch self {
        case let .literal(_, s), let .feature(_, s), let .not(_, s), let .negate(_, s), let .binary(_, _, _, s),
             let .isNull(_, _, s), let .inList(_, _, _, s), let .between(_, _, _, _, s):
            return s
        }
    }

    /// Levels of the tree: 1 for a value or a feature.
    public var depth: Int { 1 + (operands.map(\.depth).max() ?? 0) }

    /// Every feature the expression reads.
    public var features: Set<Feature> {
        switch self {
        case .literal: return []
        case let .feature(f, _): return [f]
        case let .not(e, _), let .negate(e, _), let .isNull(e, _, _): return e.features
        case let .binary(_, a, b, _): return a.features.union(b.features)
        case let .inList(e, items, _, _): return items.reduce(e.features) { $0.union($1.features) }
        case let .between(e, lo, hi, _, _): return e.features.union(lo.features).union(hi.features)
        }
    }
}
