import Foundation
import Testing
@testable import SegmenterCore

/// Rules as an attacker or a generator writes them (issue 25, item 4): past the documented
/// limits they are refused with the position, never a crash; at the limits they parse,
/// evaluate, collect their timers and explain in time and memory linear in their size.
@Suite struct RuleLimitTests {
    static func repeated(_ text: String, _ count: Int) -> String { String(repeating: text, count: count) }
    static func chain(_ count: Int, _ term: (Int) -> String, _ separator: String) -> String {
        (0..<count).map(term).joined(separator: separator)
    }
    static let oversized: [(String, String)] = [
        (repeated("(", 10_000) + "accounts = 1" + repeated(")", 10_000), "at most 16384"),
        (repeated("(", 100) + "accounts = 1" + repeated(")", 100), "nest more than 32"),
        (repeated("not ", 100_000) + "accounts = 1", "at most 16384"),
        (chain(40_000, { "accounts = \($0)" }, " or "), "at most 16384"),
        (repeated("not ", 33) + "accounts = 1", "nest more than 32"),
        (repeated("-", 40) + "accounts = 1", "nest more than 32"),
        (chain(501, { "accounts = \($0)" }, " or "), "at most 1000 values and features"),
        ("accounts in (" + chain(1_000, { String($0) }, ", ") + ")", "at most 1000 values and features"),
        (chain(70, { _ in "accounts" }, " + ") + " > 1", "nests 71 levels deep"),
    ]

    @Test(arguments: oversized)
    func oversizedRulesAreRefusedWithAPosition(rule: String, message: String) {
        #expect { try RuleParser.parseRule(rule) } throws: { error in
            guard let error = error as? RuleError else { return false }
            return error.message.contains(message) && error.span.start >= 0
        }
    }

    /// 500 comparisons (1,000 terms, the limit): a shallow tree, the right value, timers, and an
    /// explanation whose size grows with the rule's, in JSON too.
    @Test func aRuleAtTheTermLimitEvaluatesExplainsAndArmsItsTimers() throws {
        let rule = (1...500).map { "activities(\($0)d) >= \($0 * 3)" }.joined(separator: " or ")
        let expression = try RuleParser.parseRule(rule)
        #expect(expression.depth <= 16 + 10)
        let activities: (Feature) -> FeatureValue = { feature in
            if case let .activities(days) = feature { return .number(Double(days)) }  // one a day: never 3 a day
            return .null
        }
        #expect(expression.evaluate(activities) == .bool(false))
        let busy: (Feature) -> FeatureValue = { feature in
            if case let .activities(days) = feature { return .number(days == 377 ? 5_000 : 0) }
            return .null
        }
        #expect(expression.evaluate(busy) == .bool(true))

        let catalog = SegmentCatalog(segments: [try SegmentDefinition(name: "wide", ruleText: rule)])
        #expect(catalog.longestWindow == 500)
        var profile = UserProfile()
        _ = profile.apply(UserEvent(eventID: "e1", userID: "u", ts: Instant(seconds: 1_790_000_000), body: .activity(type: "x", durationMicros: 0)),
                          calendar: .utc)
        let day = DayCalendar.utc.day(of: Instant(seconds: 1_790_000_000))
        let next = catalog.timeTriggers.nextChange(profile: profile, days: [day: DayAggregate(activities: 400)], now: Instant(seconds: 1_790_000_000),
                                                   today: day, calendar: .utc)
        #expect(next != nil, "the day's activities leave some window: a timer is armed")

        let started = ContinuousClock.now
        let explanation = expression.explain(source: rule, busy)
        let lines = explanation.lines()
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(lines.count < 3 * 2 * 500, "one line per node: \(lines.count)")
        #expect(lines.reduce(0) { $0 + $1.utf8.count } < 200 * rule.utf8.count, "output linear in the rule")
        let encoded = try JSONEncoder().encode(RuleExplanationJSON(explanation))
        #expect(encoded.count > rule.utf8.count)
        #expect(try JSONSerialization.jsonObject(with: encoded) is [String: Any])
    }

    /// Chains up to 16 operands stay left-deep as written: their canonical text (and so the
    /// metric keys made from it) is what it was before long chains were balanced.
    @Test func shortChainsKeepTheirShapeAndCanonicalText() throws {
        let expression = try RuleParser.parseRule("accounts = 1 or accounts = 2 or accounts = 3")
        #expect(expression.canonicalText == "(((accounts = 1) or (accounts = 2)) or (accounts = 3))")
        let filter = try RuleParser.parseFilter("type = 'a' and topic = 'b' and amount > 1")
        #expect(filter.canonicalText == "(((type = 'a') and (topic = 'b')) and (amount > 1))")
    }
}

/// The explanation as nested JSON objects (what `explain --json` nests per rule).
private struct RuleExplanationJSON: Encodable {
    let explanation: RuleExplanation
    init(_ explanation: RuleExplanation) { self.explanation = explanation }
    enum Keys: String, CodingKey { case text, value, parts }
    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(explanation.text, forKey: .text)
        try container.encode(explanation.value.description, forKey: .value)
        try container.encode(explanation.parts.map(RuleExplanationJSON.init), forKey: .parts)
    }
}
