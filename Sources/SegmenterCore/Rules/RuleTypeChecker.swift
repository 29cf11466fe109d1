/// Static types of rule expressions. Attributes are `any`: their type is only known per user,
/// so a mismatch there yields null at run time instead of rejecting the config (SPEC §8).
public enum RuleType: String, Sendable {
    case number, string, bool, date, any, null
}

enum RuleTypeChecker {
    static func featureType(_ feature: Feature) -> RuleType {
        switch feature {
        case .signupDate: return .date
        case .attribute: return .any
        case let .event(field): return field.type
        default: return .number
        }
    }

    static func compatible(_ a: RuleType, _ b: RuleType) -> Bool {
        a == b || a == .any || b == .any || a == .null || b == .null
    }

    static func type(of expression: RuleExpression) throws(RuleError) -> RuleType {
        switch expression {
        case let .literal(literal, _):
            switch literal {
            case .null: return .null
            case .number: return .number
            case .string: return .string
            case .bool: return .bool
            case .date: return .date
            }
        case let .feature(feature, _):
            return featureType(feature)
        case let .not(operand, _):
            let t = try type(of: operand)
            guard compatible(t, .bool) else { throw RuleError("'not' needs true/false, not a \(t)", at: operand.span) }
            return .bool
        case let .negate(operand, _):
            let t = try type(of: operand)
            guard compatible(t, .number) else { throw RuleError("'-' needs a number, not a \(t)", at: operand.span) }
            return .number
        case let .binary(op, left, right, span):
            let l = try type(of: left)
            let r = try type(of: right)
            if op.isLogical {
                guard compatible(l, .bool) else { throw RuleError("'\(op.rawValue)' needs true/false, not a \(l)", at: left.span) }
                guard compatible(r, .bool) else { throw RuleError("'\(op.rawValue)' needs true/false, not a \(r)", at: right.span) }
                return .bool
            }
            if op.isArithmetic {
                guard compatible(l, .number) else { throw RuleError("'\(op.rawValue)' needs numbers, not a \(l)", at: left.span) }
                guard compatible(r, .number) else { throw RuleError("'\(op.rawValue)' needs numbers, not a \(r)", at: right.span) }
                return .number
            }
            guard compatible(l, r) else { throw RuleError("cannot compare a \(l) with a \(r)", at: span) }
            return .bool
        case let .isNull(operand, _, _):
            _ = try type(of: operand)
            return .bool
        case let .inList(value, items, _, _):
            let t = try type(of: value)
            for item in items {
                let i = try type(of: item)
                guard compatible(t, i) else { throw RuleError("cannot compare a \(t) with a \(i)", at: item.span) }
            }
            return .bool
        case let .between(value, low, high, _, _):
            let t = try type(of: value)
            for bound in [low, high] {
                let b = try type(of: bound)
                guard compatible(t, b) else { throw RuleError("cannot compare a \(t) with a \(b)", at: bound.span) }
            }
            return .bool
        }
    }
}
