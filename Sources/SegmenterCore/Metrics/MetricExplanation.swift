/// One metric as `explain` shows it (SPEC §4b): its definition as parsed, the values the rules
/// and KPIs read, and for a sequence its open instances and when each will count.
public struct MetricExplanation: Sendable, Encodable {
    public struct Instance: Sendable, Encodable {
        /// The `first` event's instant.
        public let first: String
        /// "completed", "counts from T unless a then-event arrives by then", "abandoned".
        public let status: String
    }

    public let name: String
    public let definition: String
    public let values: [Value]
    public let instances: [Instance]

    public struct Value: Sendable, Encodable {
        public let feature: String
        public let value: FeatureValue
    }

    public func lines() -> [String] {
        ["  \(name): \(definition)"] + values.map { "    \($0.feature) = \($0.value.json)" }
            + instances.map { "    open instance at \($0.first): \($0.status)" }
    }
}

extension SegmentCatalog {
    /// The metrics the given segments (all when nil) and the KPIs read, explained for one user.
    public func explainMetrics(profile: UserProfile, now: Instant, calendar: DayCalendar, segment only: String?) -> [MetricExplanation] {
        var features = Set<Feature>()
        for definition in segments where only == nil || only == definition.name { features.formUnion(definition.rule.features) }
        if only == nil { for kpi in kpis { features.formUnion(kpi.expression.features) } }
        let evaluator = FeatureEvaluator(profile: profile, days: [:], now: now, calendar: calendar)
        return metrics.metrics.compactMap { metric in
            let read = features.filter { $0.metric?.key == metric.key }.sorted { $0.description < $1.description }
            guard !read.isEmpty else { return nil }
            var instances: [MetricExplanation.Instance] = []
            if case let .sequence(_, _, within, abandoned) = metric.kind {
                for instance in profile.metrics.totals[metric.key]?.open ?? [] {
                    let deadline = Instant(nanoseconds: instance.first.nanoseconds &+ within)
                    let status: String = switch (instance.completed, abandoned) {
                    case (true, false): "completed: counts"
                    case (true, true): "completed: does not count as abandoned"
                    case (false, false): now > deadline ? "not completed by \(deadline): does not count" : "counts once a then-event arrives by \(deadline)"
                    case (false, true): now > deadline ? "abandoned: counts since just after \(deadline)"
                        : "counts as abandoned just after \(deadline) unless a then-event arrives by then"
                    }
                    instances.append(.init(first: instance.first.description, status: status))
                }
            }
            return MetricExplanation(name: metric.name, definition: metric.canonical,
                                     values: read.map { .init(feature: $0.description, value: evaluator.value(of: $0)) }, instances: instances)
        }
    }
}
