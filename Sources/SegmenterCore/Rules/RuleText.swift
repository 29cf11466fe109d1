/// A rule written back out from its tree: every operation parenthesised and every literal in
/// its one spelling, so two texts that parse alike print alike (what `validate` shows for a
/// metric's filter, and what a metric's key is made from).
extension RuleExpression {
    public var canonicalText: String {
        switch self {
        case let .literal(literal, _):
            switch literal {
            case .null: return "null"
            case let .number(n): return JSONText.number(n)
            case let .string(s): return "'" + String(s.flatMap { $0 == "'" ? ["'", "'"] : [$0] }) + "'"
            case let .bool(b): return b ? "true" : "false"
            case let .date(d): return "date('\(DayCalendar.isoDate(d))')"
            }
        case let .feature(feature, _): return feature.description
        case let .not(e, _): return "(not \(e.canonicalText))"
        case let .negate(e, _): return "(-\(e.canonicalText))"
        case let .binary(op, a, b, _): return "(\(a.canonicalText) \(op.rawValue) \(b.canonicalText))"
        case let .isNull(e, negated, _): return "(\(e.canonicalText) is \(negated ? "not " : "")null)"
        case let .inList(e, items, negated, _):
            return "(\(e.canonicalText) \(negated ? "not " : "")in (\(items.map(\.canonicalText).joined(separator: ", "))))"
        case let .between(e, lo, hi, negated, _):
            return "(\(e.canonicalText) \(negated ? "not " : "")between \(lo.canonicalText) and \(hi.canonicalText))"
        }
    }
}
