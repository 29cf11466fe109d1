/// Renders a rule as a SQL boolean expression over a per-user feature table, for a warehouse
/// dialect. Every literal becomes a bound parameter: rule text never reaches SQL as text.
/// Feature columns are fixed names (`spend_30d`), and attribute names are identifiers the lexer
/// already restricted to letters, digits and `_`, quoted per dialect.
public struct SQLRenderer: Sendable {
    public enum Dialect: String, Sendable, CaseIterable {
        case postgres, redshift, bigquery, sqlserver, sqlite
    }

    /// SQL text with placeholders, and the values to bind, in placeholder order.
    public struct Rendered: Equatable, Sendable {
        public var sql: String
        public var parameters: [RuleLiteral]
    }

    public let dialect: Dialect
    public init(dialect: Dialect) { self.dialect = dialect }

    public func render(_ expression: RuleExpression) -> Rendered {
        var parameters: [RuleLiteral] = []
        let sql = render(expression, &parameters)
        return Rendered(sql: sql, parameters: parameters)
    }

    /// The column a feature is read from.
    public func column(_ feature: Feature) -> String {
        let name: String
        switch feature {
        case let .spend(n): name = "spend_\(n)d"
        case let .activities(n): name = "activities_\(n)d"
        case let .activeMinutes(n): name = "active_minutes_\(n)d"
        case let .avgDailyMinutes(n): name = "avg_daily_minutes_\(n)d"
        case let .activeDays(n): name = "active_days_\(n)d"
        case let .attribute(attribute): name = "attr_\(attribute)"
        case let .metric(metric, .days(n)): name = "\(metric.name)_\(n)d"
        case let .metric(metric, .lifetime): name = "\(metric.name)_lifetime"
        case let .hoursSinceLast(metric): name = "hours_since_last_\(metric.name)"
        case let .hoursSinceFirst(metric): name = "hours_since_first_\(metric.name)"
        case let .event(field): name = field.description  // a metric filter over an events table: type, prop.plan
        default: name = feature.description
        }
        switch dialect {
        case .bigquery: return "`\(name)`"
        case .sqlserver: return "[\(name)]"
        default: return "\"\(name)\""
        }
    }

    private func placeholder(_ index: Int) -> String {
        switch dialect {
        case .postgres, .redshift: return "$\(index)"
        case .bigquery, .sqlserver: return "@p\(index)"
        case .sqlite: return "?\(index)"
        }
    }

    private var floatType: String {
        switch dialect {
        case .postgres, .redshift: return "DOUBLE PRECISION"
        case .bigquery: return "FLOAT64"
        case .sqlserver: return "FLOAT"
        case .sqlite: return "REAL"
        }
    }

    private func render(_ e: RuleExpression, _ p: inout [RuleLiteral]) -> String {
        switch e {
        case let .literal(literal, _):
            switch literal {
            case .null: return "NULL"
            case let .bool(b) where dialect == .sqlserver: return b ? "(1=1)" : "(1=0)"
            case let .bool(b): return b ? "TRUE" : "FALSE"
            default:
                p.append(literal)
                return placeholder(p.count)
            }
        case let .feature(feature, _):
            return column(feature)
        case let .not(operand, _):
            return "(NOT \(render(operand, &p)))"
        case let .negate(operand, _):
            return "(-\(render(operand, &p)))"
        case let .binary(op, left, right, _):
            let l = render(left, &p)
            let r = render(right, &p)
            switch op {
            case .and: return "(\(l) AND \(r))"
            case .or: return "(\(l) OR \(r))"
            case .notEqual: return "(\(l) <> \(r))"
            case .divide: return "(CAST(\(l) AS \(floatType)) / NULLIF(\(r), 0))"
            default: return "(\(l) \(op.rawValue) \(r))"
            }
        case let .isNull(operand, negated, _):
            return "(\(render(operand, &p)) IS \(negated ? "NOT " : "")NULL)"
        case let .inList(value, items, negated, _):
            let v = render(value, &p)
            let list = items.map { render($0, &p) }.joined(separator: ", ")
            return "(\(v) \(negated ? "NOT " : "")IN (\(list)))"
        case let .between(value, low, high, negated, _):
            let v = render(value, &p)
            let lo = render(low, &p)
            let hi = render(high, &p)
            return "(\(v) \(negated ? "NOT " : "")BETWEEN \(lo) AND \(hi))"
        }
    }
}
