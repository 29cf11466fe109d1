/// A KPI kept per segment. `members` (the count) always exists and is not listed here.
public struct KPIDefinition: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        /// Sum of EXPR over members where it is not null; null when there is none.
        case sum
        /// Mean of EXPR over members where it is not null; null when there is none.
        case avg
        /// Fraction of members for whom the boolean EXPR is true (null counts as not true).
        case share
    }

    public let name: String
    public let kind: Kind
    public let expressionText: String
    public let expression: RuleExpression
    /// The segments it applies to; nil means every segment including `all`.
    public let segments: [String]?

    public init(name: String, kind: Kind, expressionText: String, segments: [String]?, metrics: MetricCatalog = MetricCatalog()) throws(RuleError) {
        self.name = name
        self.kind = kind
        self.expressionText = expressionText
        self.segments = segments
        let expression = kind == .share ? try RuleParser.parseRule(expressionText, metrics: metrics.refs)
            : try RuleParser.parseExpression(expressionText, metrics: metrics.refs)
        if kind != .share {
            let type = try RuleTypeChecker.type(of: expression)
            guard type == .number || type == .any || type == .null else {
                throw RuleError("a \(kind.rawValue) KPI needs a number, but this is a \(type)", at: expression.span)
            }
        }
        for feature in expression.features where TimeTriggers.isContinuous(feature) {
            throw RuleError("KPI expressions may not use \(feature) (it changes continuously, not through events or day boundaries)",
                            at: expression.span)
        }
        self.expression = expression
    }

    /// What one member contributes: (counted, value). For `share`, value is 1 or 0.
    public func contribution(_ features: (Feature) -> FeatureValue) -> Double? { contribution(of: expression.evaluate(features)) }

    /// A member's contribution given the expression's value: `share` counts a true rule as 1.
    func contribution(of value: RuleValue) -> Double? {
        switch kind {
        case .share: value == .bool(true) ? 1 : 0
        case .sum, .avg: value.number
        }
    }
}
