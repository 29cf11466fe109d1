/// A value during rule evaluation; SQL semantics, so null is a value.
public enum RuleValue: Equatable, Sendable {
    case null
    case number(Double)
    case string(String)
    case bool(Bool)
    case date(DayNumber)

    init(_ feature: FeatureValue) {
        switch feature {
        case .null: self = .null
        case let .number(n): self = .number(n)
        case let .money(cents): self = .number(Double(cents) / 100)
        case let .string(s): self = .string(s)
        case let .bool(b): self = .bool(b)
        case let .date(d): self = .date(d)
        }
    }

    init(_ literal: RuleLiteral) {
        switch literal {
        case .null: self = .null
        case let .number(n): self = .number(n)
        case let .string(s): self = .string(s)
        case let .bool(b): self = .bool(b)
        case let .date(d): self = .date(d)
        }
    }

    /// The number, if this is one.
    public var number: Double? { if case let .number(n) = self { return n } else { return nil } }
}

extension RuleExpression {
    /// Evaluates with SQL three-valued logic: comparisons with null are null, `and`/`or` follow
    /// Kleene logic, a runtime type mismatch (an attribute of the wrong type) or a division by
    /// zero is null (SPEC §8).
    public func evaluate(_ features: (Feature) -> FeatureValue) -> RuleValue {
        switch self {
        case let .literal(literal, _):
            return RuleValue(literal)
        case let .feature(feature, _):
            return RuleValue(features(feature))
        case let .not(operand, _):
            return RuleOperations.not(operand.evaluate(features))
        case let .negate(operand, _):
            return RuleOperations.negate(operand.evaluate(features))
        case let .binary(op, left, right, _):
            return RuleOperations.binary(op, left.evaluate(features), right.evaluate(features))
        case let .isNull(operand, negated, _):
            return RuleOperations.isNull(operand.evaluate(features), negated: negated)
        case let .inList(value, items, negated, _):
            return RuleOperations.inList(value.evaluate(features), items.map { $0.evaluate(features) }, negated: negated)
        case let .between(value, low, high, negated, _):
            return RuleOperations.between(value.evaluate(features), low.evaluate(features), high.evaluate(features), negated: negated)
        }
    }

    /// True only when the rule evaluates to true (null and false are "not a member").
    public func isTrue(_ features: (Feature) -> FeatureValue) -> Bool { evaluate(features) == .bool(true) }
}

/// What each operator does to its operands' values (SPEC §8), shared by the tree walk above and
/// the compiled form (`CompiledExpression`), so both give the same answer by construction.
enum RuleOperations {
    static func not(_ operand: RuleValue) -> RuleValue {
        guard case let .bool(b) = operand else { return .null }
        return .bool(!b)
    }

    static func negate(_ operand: RuleValue) -> RuleValue {
        guard case let .number(n) = operand else { return .null }
        return .number(-n)
    }

    static func binary(_ op: BinaryOperator, _ l: RuleValue, _ r: RuleValue) -> RuleValue {
        if op == .and || op == .or { return logical(op, l, r) }
        if op.isArithmetic { return arithmetic(op, l, r) }
        guard let order = compare(l, r) else { return .null }
        switch op {
        case .equal: return .bool(order == 0)
        case .notEqual: return .bool(order != 0)
        case .less: return .bool(order < 0)
        case .lessOrEqual: return .bool(order <= 0)
        case .greater: return .bool(order > 0)
        default: return .bool(order >= 0)
        }
    }

    static func isNull(_ operand: RuleValue, negated: Bool) -> RuleValue { .bool((operand == .null) != negated) }

    /// SQL: true if any item equals; else null if the value or any item is null; else false.
    static func inList(_ v: RuleValue, _ items: some Sequence<RuleValue>, negated: Bool) -> RuleValue {
        var sawNull = v == .null
        for item in items {
            switch compare(v, item) {
            case 0?: return .bool(!negated)
            case nil: sawNull = true
            default: break
            }
        }
        return sawNull ? .null : .bool(negated)
    }

    static func between(_ v: RuleValue, _ low: RuleValue, _ high: RuleValue, negated: Bool) -> RuleValue {
        let inside = logical(.and, comparison(compare(v, low).map { $0 >= 0 }), comparison(compare(v, high).map { $0 <= 0 }))
        guard case let .bool(b) = inside else { return .null }
        return .bool(b != negated)
    }
}

private func comparison(_ result: Bool?) -> RuleValue { result.map(RuleValue.bool) ?? .null }

private func logical(_ op: BinaryOperator, _ l: RuleValue, _ r: RuleValue) -> RuleValue {
    let a: Bool? = if case let .bool(b) = l { b } else { nil }
    let b: Bool? = if case let .bool(x) = r { x } else { nil }
    if op == .and {
        if a == false || b == false { return .bool(false) }
        if let a, let b { return .bool(a && b) }
        return .null
    }
    if a == true || b == true { return .bool(true) }
    if let a, let b { return .bool(a || b) }
    return .null
}

private func arithmetic(_ op: BinaryOperator, _ l: RuleValue, _ r: RuleValue) -> RuleValue {
    guard case let .number(a) = l, case let .number(b) = r else { return .null }
    switch op {
    case .plus: return .number(a + b)
    case .minus: return .number(a - b)
    case .times: return .number(a * b)
    default: return b == 0 ? .null : .number(a / b)
    }
}

/// -1, 0, 1, or nil when either side is null or the kinds differ.
private func compare(_ l: RuleValue, _ r: RuleValue) -> Int? {
    switch (l, r) {
    case let (.number(a), .number(b)): return a < b ? -1 : (a > b ? 1 : 0)
    case let (.string(a), .string(b)): return a < b ? -1 : (a > b ? 1 : 0)
    case let (.date(a), .date(b)): return a < b ? -1 : (a > b ? 1 : 0)
    case let (.bool(a), .bool(b)): return a == b ? 0 : (a ? 1 : -1)
    default: return nil
    }
}
