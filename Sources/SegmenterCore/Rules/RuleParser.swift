/// Parses rule text into a typed `RuleExpression` (SPEC §4 grammar, keywords case-insensitive).
///
/// ```
/// or        := and ('or' and)*
/// and       := not ('and' not)*
/// not       := 'not' not | predicate
/// predicate := sum [compare sum | ['not'] 'in' '(' list ')' | ['not'] 'between' sum 'and' sum | 'is' ['not'] 'null']
/// sum       := product (('+' | '-') product)*
/// product   := unary (('*' | '/') unary)*
/// unary     := '-' unary | primary
/// primary   := number | 'string' | true | false | null | date('YYYY-MM-DD') | feature | '(' or ')'
/// feature   := name ['(' Nd ')'] | attr '.' name | metric '(' (Nd | lifetime) ')'
///            | (hours_since_last | hours_since_first) '(' metric ')'
/// field     := type | topic | amount | duration_s | prop '.' name      (metric filters only)
/// ```
public struct RuleParser {
    /// What names in the text refer to: a user's features (rules, KPIs) or one event's fields
    /// (metric filters and expressions, SPEC §4b).
    public enum Scope: Sendable {
        case user(metrics: [String: MetricRef])
        case event
    }

    private var tokens: [RuleToken]
    private var position = 0
    private let scope: Scope
    /// Parentheses, `not`s and unary minuses open around the current token, and values and
    /// features read so far: both bounded by `RuleLimits`, so no input can exhaust the stack.
    private var nesting = 0
    private var terms = 0

    /// Parses and type-checks a rule, which must be boolean.
    public static func parseRule(_ text: String, metrics: [String: MetricRef] = [:]) throws(RuleError) -> RuleExpression {
        try parseBoolean(text, scope: .user(metrics: metrics), what: "a rule")
    }

    /// Parses and type-checks a metric's filter: true or false for one event.
    public static func parseFilter(_ text: String) throws(RuleError) -> RuleExpression {
        try parseBoolean(text, scope: .event, what: "a filter")
    }

    /// Parses and type-checks a metric's value expression over one event (`sum:` needs a number).
    public static func parseEventValue(_ text: String, number: Bool) throws(RuleError) -> RuleExpression {
        let expression = try parse(text, scope: .event)
        let type = try RuleTypeChecker.type(of: expression)
        if number, !RuleTypeChecker.compatible(type, .number) {
            throw RuleError("a sum needs a number, but this is a \(type)", at: expression.span)
        }
        return expression
    }

    private static func parseBoolean(_ text: String, scope: Scope, what: String) throws(RuleError) -> RuleExpression {
        let expression = try parse(text, scope: scope)
        let type = try RuleTypeChecker.type(of: expression)
        guard type == .bool || type == .any || type == .null else {
            throw RuleError("\(what) must be true or false, but this is a \(type)", at: expression.span)
        }
        return expression
    }

    /// Parses and type-checks any expression (KPI `sum:`/`avg:` expressions are numbers).
    public static func parseExpression(_ text: String, metrics: [String: MetricRef] = [:]) throws(RuleError) -> RuleExpression {
        try parse(text, scope: .user(metrics: metrics))
    }

    private static func parse(_ text: String, scope: Scope) throws(RuleError) -> RuleExpression {
        let length = text.unicodeScalars.count
        guard length <= RuleLimits.maxLength else {
            throw RuleError("this is \(length) characters long; a rule may have at most \(RuleLimits.maxLength)",
                            at: SourceSpan(start: RuleLimits.maxLength, length: 1))
        }
        var parser = RuleParser(tokens: try RuleLexer.tokens(text), scope: scope)
        let expression = try parser.parseOr()
        guard case .end = parser.current.kind else { throw RuleError("unexpected \(parser.describe(parser.current))", at: parser.current.span) }
        let depth = expression.depth
        guard depth <= RuleLimits.maxDepth else {
            throw RuleError("this nests \(depth) levels deep; a rule may nest at most \(RuleLimits.maxDepth) "
                            + "(a chain of + - * / counts one level per operator: use fewer terms or a metric)", at: expression.span)
        }
        _ = try RuleTypeChecker.type(of: expression)
        return expression
    }

    private init(tokens: [RuleToken], scope: Scope) {
        self.tokens = tokens
        self.scope = scope
    }

    private var current: RuleToken { tokens[position] }

    private func describe(_ token: RuleToken) -> String {
        switch token.kind {
        case .end: return "end of rule"
        case let .identifier(name): return "'\(name)'"
        case let .symbol(symbol): return "'\(symbol)'"
        case let .number(n): return "number \(n)"
        case let .window(n): return "window \(n)d"
        case let .string(s): return "string '\(s)'"
        }
    }

    private func isKeyword(_ keyword: String, at offset: Int = 0) -> Bool {
        guard position + offset < tokens.count, case let .identifier(name) = tokens[position + offset].kind else { return false }
        return name.lowercased() == keyword
    }

    private func isSymbol(_ symbol: String) -> Bool { current.kind == .symbol(symbol) }

    @discardableResult
    private mutating func expectSymbol(_ symbol: String) throws(RuleError) -> RuleToken {
        guard isSymbol(symbol) else { throw RuleError("expected '\(symbol)' but found \(describe(current))", at: current.span) }
        defer { position += 1 }
        return current
    }

    private mutating func parseOr() throws(RuleError) -> RuleExpression {
        var operands = [try parseAnd()]
        while isKeyword("or") {
            position += 1
            operands.append(try parseAnd())
        }
        return Self.chain(.or, operands[...])
    }

    private mutating func parseAnd() throws(RuleError) -> RuleExpression {
        var operands = [try parseNot()]
        while isKeyword("and") {
            position += 1
            operands.append(try parseNot())
        }
        return Self.chain(.and, operands[...])
    }

    /// `a or b or c …` as a tree: left-deep, as written, up to `RuleLimits.leftDeepChain`
    /// operands (so a rule's text, canonical form and metric key stay what they always were);
    /// a longer chain is split in halves first, so its depth grows with the logarithm of its
    /// length. `and` and `or` are associative in three-valued logic: the value is the same.
    static func chain(_ op: BinaryOperator, _ operands: ArraySlice<RuleExpression>) -> RuleExpression {
        if operands.count > RuleLimits.leftDeepChain {
            let middle = operands.startIndex + operands.count / 2
            let left = chain(op, operands[..<middle]), right = chain(op, operands[middle...])
            return .binary(op, left, right, .covering(left.span, right.span))
        }
        var result = operands.first!
        for right in operands.dropFirst() { result = .binary(op, result, right, .covering(result.span, right.span)) }
        return result
    }

    /// Enters one level of nesting at `span`, refused past `RuleLimits.maxNesting`.
    private mutating func enter(_ span: SourceSpan) throws(RuleError) {
        nesting += 1
        guard nesting <= RuleLimits.maxNesting else {
            throw RuleError("parentheses, not and unary minus nest more than \(RuleLimits.maxNesting) deep here", at: span)
        }
    }

    /// Counts one value or feature, refused past `RuleLimits.maxTerms`.
    private mutating func countTerm(_ span: SourceSpan) throws(RuleError) {
        terms += 1
        guard terms <= RuleLimits.maxTerms else { throw RuleError("a rule may read at most \(RuleLimits.maxTerms) values and features", at: span) }
    }

    private mutating func parseNot() throws(RuleError) -> RuleExpression {
        if isKeyword("not") {
            let start = current.span
            try enter(start)
            position += 1
            let operand = try parseNot()
            nesting -= 1
            return .not(operand, .covering(start, operand.span))
        }
        return try parsePredicate()
    }

    private mutating func parsePredicate() throws(RuleError) -> RuleExpression {
        let left = try parseSum()
        if case let .symbol(symbol) = current.kind, let op = BinaryOperator(rawValue: symbol), op.isComparison {
            position += 1
            let right = try parseSum()
            return .binary(op, left, right, .covering(left.span, right.span))
        }
        let negated = isKeyword("not") && (isKeyword("in", at: 1) || isKeyword("between", at: 1))
        if negated { position += 1 }
        if isKeyword("in") {
            position += 1
            try expectSymbol("(")
            var items = [try parseSum()]
            while isSymbol(",") {
                position += 1
                items.append(try parseSum())
            }
            let close = try expectSymbol(")")
            return .inList(left, items, negated: negated, .covering(left.span, close.span))
        }
        if isKeyword("between") {
            position += 1
            let low = try parseSum()
            guard isKeyword("and") else { throw RuleError("expected 'and' in between … and …", at: current.span) }
            position += 1
            let high = try parseSum()
            return .between(left, low, high, negated: negated, .covering(left.span, high.span))
        }
        if isKeyword("is") {
            position += 1
            let isNot = isKeyword("not")
            if isNot { position += 1 }
            guard isKeyword("null") else { throw RuleError("expected 'null' after 'is'", at: current.span) }
            let end = current.span
            position += 1
            return .isNull(left, negated: isNot, .covering(left.span, end))
        }
        return left
    }

    private mutating func parseSum() throws(RuleError) -> RuleExpression {
        var left = try parseProduct()
        while isSymbol("+") || isSymbol("-") {
            let op: BinaryOperator = isSymbol("+") ? .plus : .minus
            position += 1
            let right = try parseProduct()
            left = .binary(op, left, right, .covering(left.span, right.span))
        }
        return left
    }

    private mutating func parseProduct() throws(RuleError) -> RuleExpression {
        var left = try parseUnary()
        while isSymbol("*") || isSymbol("/") {
            let op: BinaryOperator = isSymbol("*") ? .times : .divide
            position += 1
            let right = try parseUnary()
            left = .binary(op, left, right, .covering(left.span, right.span))
        }
        return left
    }

    private mutating func parseUnary() throws(RuleError) -> RuleExpression {
        if isSymbol("-") {
            let start = current.span
            try enter(start)
            position += 1
            let operand = try parseUnary()
            nesting -= 1
            return .negate(operand, .covering(start, operand.span))
        }
        return try parsePrimary()
    }

    private mutating func parsePrimary() throws(RuleError) -> RuleExpression {
        let token = current
        if case .symbol("(") = token.kind {} else { try countTerm(token.span) }
        switch token.kind {
        case let .number(value):
            position += 1
            return .literal(.number(value), token.span)
        case let .string(value):
            position += 1
            return .literal(.string(value), token.span)
        case .symbol("("):
            try enter(token.span)
            position += 1
            let inner = try parseOr()
            try expectSymbol(")")
            nesting -= 1
            return inner
        case let .identifier(name):
            position += 1
            switch name.lowercased() {
            case "true": return .literal(.bool(true), token.span)
            case "false": return .literal(.bool(false), token.span)
            case "null": return .literal(.null, token.span)
            case "date" where isSymbol("("):
                position += 1
                guard case let .string(text) = current.kind else { throw RuleError("date() takes a string like '2026-03-01'", at: current.span) }
                guard let day = DayCalendar.dayNumber(isoDate: text) else { throw RuleError("'\(text)' is not a date like 2026-03-01", at: current.span) }
                position += 1
                let close = try expectSymbol(")")
                return .literal(.date(day), .covering(token.span, close.span))
            case "attr" where isSymbol("."):
                guard case .user = scope else { throw RuleError("a filter reads the event's fields (type, topic, amount, duration_s, prop.NAME), not the user's attributes", at: token.span) }
                position += 1
                guard case let .identifier(attribute) = current.kind else { throw RuleError("expected an attribute name after 'attr.'", at: current.span) }
                let end = current.span
                position += 1
                return .feature(.attribute(attribute), .covering(token.span, end))
            case "prop" where isSymbol("."):
                guard case .event = scope else { throw RuleError("prop.NAME is an event's property: use it in a metric's filter, and the metric in the rule", at: token.span) }
                position += 1
                guard case let .identifier(property) = current.kind, EventDecoder.isPropertyName(property) else {
                    throw RuleError("expected a property name (A-Z, a-z, 0-9, _) after 'prop.'", at: current.span)
                }
                let end = current.span
                position += 1
                return .feature(.event(.property(property)), .covering(token.span, end))
            default:
                switch scope {
                case let .user(metrics): return try parseFeature(name: name, token: token, metrics: metrics)
                case .event: return try parseEventField(name: name, token: token)
                }
            }
        default:
            throw RuleError("expected a value, feature or '(' but found \(describe(token))", at: token.span)
        }
    }

    private static let windowed: [String: @Sendable (Int) -> Feature] = [
        "spend": Feature.spend, "activities": Feature.activities, "active_minutes": Feature.activeMinutes,
        "avg_daily_minutes": Feature.avgDailyMinutes, "active_days": Feature.activeDays,
    ]
    private static let plain: [String: Feature] = [
        "lifetime_spend": .lifetimeSpend, "accounts": .accounts, "signup_date": .signupDate,
        "days_since_signup": .daysSinceSignup, "hours_since_signup": .hoursSinceSignup,
        "activities_since_signup": .activitiesSinceSignup, "hours_since_last_activity": .hoursSinceLastActivity,
    ]

    /// Every built-in feature's name (metrics may not take them).
    public static var builtinNames: Set<String> { Set(windowed.keys).union(plain.keys) }

    private mutating func parseEventField(name: String, token: RuleToken) throws(RuleError) -> RuleExpression {
        if let field = EventField.byName[name.lowercased()] { return .feature(.event(field), token.span) }
        throw RuleError("unknown event field '\(name)' (a filter reads: amount, duration_s, prop.NAME, topic, type)", at: token.span)
    }

    private mutating func parseFeature(name original: String, token: RuleToken, metrics: [String: MetricRef]) throws(RuleError) -> RuleExpression {
        let name = original.lowercased()
        if name == "hours_since_last" || name == "hours_since_first", isSymbol("(") {
            position += 1
            guard case let .identifier(metricName) = current.kind, let metric = metrics[metricName] else {
                throw RuleError("\(name) takes a metric's name\(Self.knownMetrics(metrics))", at: current.span)
            }
            position += 1
            let close = try expectSymbol(")")
            return .feature(name == "hours_since_last" ? .hoursSinceLast(metric) : .hoursSinceFirst(metric), .covering(token.span, close.span))
        }
        if let metric = metrics[original] {
            guard isSymbol("(") else { throw RuleError("metric \(original) needs a window, like \(original)(7d) or \(original)(lifetime)", at: token.span) }
            position += 1
            let window: MetricWindow
            switch current.kind {
            case let .window(days): window = .days(days)
            case let .identifier(word) where word.lowercased() == "lifetime": window = .lifetime
            default: throw RuleError("expected a window like 7d, or lifetime", at: current.span)
            }
            position += 1
            let close = try expectSymbol(")")
            return .feature(.metric(metric, window), .covering(token.span, close.span))
        }
        if EventField.byName[name] != nil || name == "prop" {
            throw RuleError("'\(original)' is a field of an event: define a metric over it (metrics:) and use the metric here", at: token.span)
        }
        if let make = Self.windowed[name] {
            guard isSymbol("(") else { throw RuleError("\(name) needs a window, like \(name)(30d)", at: token.span) }
            position += 1
            guard case let .window(days) = current.kind else { throw RuleError("expected a window like 30d", at: current.span) }
            position += 1
            let close = try expectSymbol(")")
            return .feature(make(days), .covering(token.span, close.span))
        }
        if let feature = Self.plain[name] { return .feature(feature, token.span) }
        let known = (Self.windowed.keys.map { "\($0)(Nd)" } + Self.plain.keys + ["attr.NAME"] + metrics.keys.map { "\($0)(Nd)" })
            .sorted().joined(separator: ", ")
        throw RuleError("unknown feature '\(original)' (known: \(known))", at: token.span)
    }

    private static func knownMetrics(_ metrics: [String: MetricRef]) -> String {
        metrics.isEmpty ? " (no metrics are defined)" : " (defined: \(metrics.keys.sorted().joined(separator: ", ")))"
    }
}
