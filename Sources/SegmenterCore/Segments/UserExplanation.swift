/// Why a user is (or is not) in each segment, and what time alone will change next: `segmenter
/// explain` and `/api/users/{id}/explain`. Pure: the user's state and `now` in, text out.
public struct UserExplanation: Sendable {
    public struct Segment: Sendable {
        public let name: String
        public let ruleText: String
        public let member: Bool
        /// The rule with every sub-expression's value (nil for `all`, which has no rule).
        public let rule: RuleExplanation?
        /// The features the rule reads, with this user's values.
        public let features: [(name: String, value: FeatureValue)]
    }

    public struct NextChange: Sendable {
        public let instant: Instant
        /// What causes it: "the events of 2026-11-09 leave the 30-day window".
        public let reason: String
        /// "leaves big_spenders", "enters inactive_new_users"; empty when only a KPI
        /// contribution moves then.
        public let changes: [String]
    }

    public let userID: String
    public let now: Instant
    public let segments: [Segment]
    /// The user's next timer (the instant the store holds), and what it changes.
    public let nextChange: NextChange?
    /// When the timer changes no membership: the first later one that does (searched a bounded
    /// number of steps ahead).
    public let nextMembershipChange: NextChange?
    /// Their recent membership changes as published, oldest first: "why did X enter at T".
    public var history: [MembershipChange] = []
    /// Instants of their events that wait for the pair's clock to reach them (not counted yet).
    public var waiting: [Instant] = []
    /// The metrics the explained rules read (SPEC §4b): definitions, values, open sequence instances.
    public var metrics: [MetricExplanation] = []

    /// Human-readable lines; instants also in the calendar's time zone when it is not UTC.
    public func lines(calendar: DayCalendar) -> [String] {
        var out = ["user \(userID) as of \(now) (their partition pair's watermark)"]
        for segment in segments {
            out.append("\(segment.member ? "in" : "not in") \(segment.name)" + (segment.rule == nil ? " (every user seen)" : ": \(segment.ruleText)"))
            if let rule = segment.rule { out += rule.lines(indent: 2) }
            for feature in segment.features { out.append("    \(feature.name) = \(feature.value.json)") }
        }
        if !metrics.isEmpty {
            out.append("metrics (as their filters parsed):")
            out += metrics.flatMap { $0.lines() }
        }
        if let next = nextChange {
            let local = calendar.utcOffsetSeconds(at: next.instant) == 0 ? "" : " (\(Self.local(next.instant, calendar)) \(calendar.timeZone.identifier))"
            let what = next.changes.isEmpty ? "no membership changes (a KPI contribution may)" : next.changes.joined(separator: ", ")
            out.append("next change by time: \(what) at \(next.instant)\(local), when \(next.reason)")
            if let later = nextMembershipChange {
                out.append("then: \(later.changes.joined(separator: ", ")) at \(later.instant), when \(later.reason)")
            }
        } else {
            out.append("next change by time: none (only an event of theirs can change their segments)")
        }
        if let first = waiting.first {
            out.append("waiting: \(waiting.count) event\(waiting.count == 1 ? "" : "s") ahead of the pair's watermark, the first at \(first) "
                       + "(they count once the watermark reaches them)")
        }
        if !history.isEmpty {
            out.append("recent membership changes (as published):")
            for change in history {
                out.append("  \(change.asOf)  \(change.entered ? "entered" : "left") \(change.segment)  (cause \(change.cause.rawValue))")
            }
        }
        return out
    }

    /// `2026-12-09T00:00` in the calendar's zone.
    static func local(_ instant: Instant, _ calendar: DayCalendar) -> String {
        let shifted = Instant(nanoseconds: instant.nanoseconds + calendar.utcOffsetSeconds(at: instant) * Instant.nanosPerSecond)
        return String(shifted.description.prefix(16))
    }
}

extension SegmentCatalog {
    /// Explains `userID`'s segments at `now` (only `segment` when given).
    public func explain(userID: String, profile: UserProfile, days: [DayNumber: DayAggregate], now: Instant, calendar: DayCalendar,
                        segment only: String? = nil) -> UserExplanation {
        let evaluator = FeatureEvaluator(profile: profile, days: days, now: now, calendar: calendar)
        let lookup = evaluator.value(of:)
        let evaluation = evaluate(profile: profile, days: days, now: now, calendar: calendar)
        var parts: [UserExplanation.Segment] = []
        if only == nil || only == Self.allSegment {
            parts.append(.init(name: Self.allSegment, ruleText: "", member: true, rule: nil, features: []))
        }
        for definition in segments where only == nil || only == definition.name {
            let features = definition.rule.features.sorted { $0.description < $1.description }.map { ($0.description, lookup($0)) }
            parts.append(.init(name: definition.name, ruleText: definition.ruleText, member: evaluation.segments.contains(definition.name),
                               rule: definition.rule.explain(source: definition.ruleText, lookup), features: features))
        }
        // Step from timer to timer (bounded) to the first one that changes a membership.
        var steps: [UserExplanation.NextChange] = []
        var at = now
        while steps.count < 64, steps.last?.changes.isEmpty ?? true,
              let (instant, reason) = timeTriggers.nextChangeExplained(profile: profile, days: days, now: at, today: calendar.day(of: at), calendar: calendar) {
            let then = evaluate(profile: profile, days: days, now: instant, calendar: calendar).segments
            let changes = segmentNames.filter { $0 != Self.allSegment && (only == nil || only == $0) }.compactMap { name -> String? in
                switch (evaluation.segments.contains(name), then.contains(name)) {
                case (true, false): "leaves \(name)"
                case (false, true): "enters \(name)"
                default: nil
                }
            }
            steps.append(.init(instant: instant, reason: reason, changes: changes))
            at = instant
        }
        let later = steps.count > 1 && !steps.last!.changes.isEmpty ? steps.last : nil
        var explanation = UserExplanation(userID: userID, now: now, segments: parts, nextChange: steps.first, nextMembershipChange: later)
        explanation.metrics = explainMetrics(profile: profile, now: now, calendar: calendar, segment: only)
        return explanation
    }
}
