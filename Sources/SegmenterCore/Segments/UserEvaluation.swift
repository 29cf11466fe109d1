/// A user's segments and KPI contributions at one `now`, and when that could next change
/// without a new event of theirs. Pure.
public struct UserEvaluation: Equatable, Sendable {
    /// Per segment the user is in (`all` included): per KPI of that segment (catalog order), the contribution.
    public var contributions: [String: [Double?]]
    /// The earliest instant after `now` at which a rule or KPI value could change by time alone.
    public var nextChange: Instant?

    public init(contributions: [String: [Double?]], nextChange: Instant?) {
        self.contributions = contributions
        self.nextChange = nextChange
    }

    /// Segments the user is in, `all` included.
    public var segments: Set<String> { Set(contributions.keys) }
}

extension SegmentCatalog {
    /// Each feature once, each rule and KPI by its compiled form; segments with the same KPIs
    /// share one contributions array.
    public func evaluate(profile: UserProfile, days: [DayNumber: DayAggregate], now: Instant, calendar: DayCalendar) -> UserEvaluation {
        let evaluation = evaluateSlots(profile: profile, days: days, now: now, calendar: calendar)
        var contributions: [String: [Double?]] = [:]
        contributions.reserveCapacity(segmentSlots.count)
        for (slot, values) in zip(segmentSlots, evaluation.contributions) where values != nil { contributions[slot.name] = values }
        return UserEvaluation(contributions: contributions, nextChange: evaluation.nextChange)
    }

    /// `evaluate` by slot, for the batch step (it runs at every event and timer of every user):
    /// no dictionary is built, and the features live on the stack.
    func evaluateSlots(profile: UserProfile, days: [DayNumber: DayAggregate], now: Instant, calendar: DayCalendar) -> SlotEvaluation {
        let evaluator = FeatureEvaluator(profile: profile, days: days, now: now, calendar: calendar)
        let nextChange = timeTriggers.nextChange(profile: profile, days: days, now: now, today: evaluator.today, calendar: calendar)
        let slots = withUnsafeTemporaryAllocation(of: RuleValue.self, capacity: featureSlots.features.count) { buffer in
            featureSlots.fill(buffer, evaluator)
            defer { _ = buffer.deinitialize() }
            return contributions(features: UnsafeBufferPointer(buffer))
        }
        return SlotEvaluation(contributions: slots, nextChange: nextChange)
    }

    private func contributions(features: UnsafeBufferPointer<RuleValue>) -> [[Double?]?] {
        // Each KPI group once, only if a segment the user is in keeps it.
        var groups = [[Double?]?](repeating: nil, count: kpiGroups.count)
        func contributions(ofGroup group: Int) -> [Double?] {
            if let known = groups[group] { return known }
            let values: [Double?] = kpiGroups[group].map { kpis[$0].contribution(of: compiledKPIs[$0].evaluate(features: features)) }
            groups[group] = values
            return values
        }
        var result: [[Double?]?] = []
        result.reserveCapacity(segmentSlots.count)
        result.append(contributions(ofGroup: kpiGroupOfAll))
        for index in rules.indices {
            result.append(compiledRules[index].evaluate(features: features) == .bool(true) ? contributions(ofGroup: kpiGroupOfRule[index]) : nil)
        }
        return result
    }
}

/// A user's evaluation by the catalog's segment slots (`all`, then the rules in order).
struct SlotEvaluation {
    /// Per slot, the user's contributions to its KPIs; nil: not a member.
    let contributions: [[Double?]?]
    /// The earliest instant after `now` at which a rule or KPI value could change by time alone.
    let nextChange: Instant?
}

/// The instants at which the clock alone can change a rule or KPI value (GUIDE: time is an input).
///
/// - Windows: a day leaves an `Nd` window at the start of day `d + N`, and a day after today
///   (events ahead of the pair's watermark) enters them at its start.
/// - `hours_since_*` compared directly with constants (`hours_since_signup >= 24`) cross them at
///   `base + c hours`; used any other way (inside arithmetic) they are re-checked hourly.
/// - `days_since_signup` moves at local midnights: compared directly with constants
///   (`days_since_signup <= 7`) it matters only at the midnights where it reaches them, so a
///   user long past every threshold has no daily timer; used any other way, every midnight.
public struct TimeTriggers: Sendable, Equatable {
    /// Windows of the built-in day sums.
    public let windows: [Int]
    /// Per metric read over windows, its windows (SPEC §4b).
    public let metricWindows: [MetricRef: [Int]]
    /// `then_not` sequences read anywhere: an instance starts to count when `within` passes.
    public let abandonments: [MetricRef]
    public let daily: Bool
    public let thresholds: [Feature: [Double]]
    public let hourly: Set<Feature>
    /// The `hours_since_*` features read, each with thresholds or hourly (computed once: the
    /// scan runs for every evaluation).
    let continuousFeatures: [Feature]

    init(segments: [SegmentDefinition], kpis: [KPIDefinition]) {
        let expressions = segments.map(\.rule) + kpis.map(\.expression)
        let features = expressions.reduce(into: Set<Feature>()) { $0.formUnion($1.features) }
        windows = Set(features.filter { $0.metric == nil }.compactMap(\.windowDays)).sorted()
        var metricWindows: [MetricRef: Set<Int>] = [:]
        for case let .metric(metric, .days(n)) in features { metricWindows[metric, default: []].insert(n) }
        self.metricWindows = metricWindows.mapValues { $0.sorted() }
        abandonments = Set(features.compactMap(\.metric).filter { if case .sequence(_, true) = $0.shape { true } else { false } })
            .sorted { $0.name < $1.name }
        var thresholds: [Feature: Set<Double>] = [:]
        var periodic: Set<Feature> = []
        for expression in expressions { Self.collect(expression, &thresholds, &periodic) }
        self.thresholds = thresholds.mapValues { $0.sorted() }
        hourly = periodic.filter(Self.isContinuous)
        daily = periodic.contains(.daysSinceSignup)
        continuousFeatures = Set(self.thresholds.keys).union(hourly).filter(Self.isContinuous).sorted { $0.description < $1.description }
    }

    /// Features that move with the clock alone and can be given crossing times.
    public static func isContinuous(_ feature: Feature) -> Bool {
        switch feature {
        case .hoursSinceSignup, .hoursSinceLastActivity, .hoursSinceLast, .hoursSinceFirst: true
        default: false
        }
    }

    static func isClocked(_ feature: Feature) -> Bool { isContinuous(feature) || feature == .daysSinceSignup }

    private static func constant(_ e: RuleExpression) -> Double? {
        switch e {
        case let .literal(.number(n), _): return n
        case let .negate(inner, _): return constant(inner).map { -$0 }
        default: return nil
        }
    }

    /// Collects the constants each clocked feature is compared with directly, and the clocked
    /// features used any other way (`periodic`: re-checked every hour or midnight).
    private static func collect(_ e: RuleExpression, _ thresholds: inout [Feature: Set<Double>], _ periodic: inout Set<Feature>) {
        func direct(_ feature: RuleExpression, _ bounds: [RuleExpression]) -> Bool {
            guard case let .feature(f, _) = feature, isClocked(f) else { return false }
            let values = bounds.compactMap(constant)
            guard values.count == bounds.count else { return false }
            thresholds[f, default: []].formUnion(values)
            return true
        }
        switch e {
        case let .binary(op, l, r, _) where op.isComparison:
            if direct(l, [r]) || direct(r, [l]) { return }
        case let .between(v, lo, hi, _, _):
            if direct(v, [lo, hi]) { return }
        case let .inList(v, items, _, _):
            if direct(v, items) { return }
        case let .feature(f, _) where isClocked(f):
            periodic.insert(f)
            return
        default: break
        }
        switch e {
        case .literal, .feature: return
        case let .not(x, _), let .negate(x, _), let .isNull(x, _, _): collect(x, &thresholds, &periodic)
        case let .binary(_, a, b, _): collect(a, &thresholds, &periodic); collect(b, &thresholds, &periodic)
        case let .inList(v, items, _, _): ([v] + items).forEach { collect($0, &thresholds, &periodic) }
        case let .between(v, lo, hi, _, _): [v, lo, hi].forEach { collect($0, &thresholds, &periodic) }
        }
    }

    public func nextChange(profile: UserProfile, days: [DayNumber: DayAggregate], now: Instant, today: DayNumber,
                           calendar: DayCalendar) -> Instant? {
        var next: Instant?
        scan(profile: profile, days: days, now: now, today: today, calendar: calendar) { candidate, _ in
            if candidate > now, next == nil || candidate < next! { next = candidate }
        }
        return next
    }

    /// `nextChange` with what causes it, in words: "the spend of 2026-11-09 leaves the 30-day
    /// window" (for `explain`; the reason is built only for the instant that wins).
    public func nextChangeExplained(profile: UserProfile, days: [DayNumber: DayAggregate], now: Instant, today: DayNumber,
                                    calendar: DayCalendar) -> (instant: Instant, reason: String)? {
        var next: (instant: Instant, reason: TimeChangeReason)?
        scan(profile: profile, days: days, now: now, today: today, calendar: calendar) { candidate, reason in
            if candidate > now, next == nil || candidate < next!.instant { next = (candidate, reason) }
        }
        return next.map { ($0.instant, $0.reason.description) }
    }

    /// Every instant time alone could change something at, with its cause (a small value: this
    /// runs for every evaluation).
    private func scan(profile: UserProfile, days: [DayNumber: DayAggregate], now: Instant, today: DayNumber,
                      calendar: DayCalendar, consider: (Instant, TimeChangeReason) -> Void) {
        if !windows.isEmpty {
            // A day leaves an Nd window at the start of day + N: only the oldest day with data
            // inside each window matters.
            for n in windows {
                let first = today - DayNumber(n - 1)
                var oldest: DayNumber?
                for (day, aggregate) in days where day >= first && day <= today && aggregate != DayAggregate() {
                    if oldest == nil || day < oldest! { oldest = day }
                }
                if let oldest {
                    consider(calendar.start(of: oldest + DayNumber(n)), .leavesWindow(day: oldest, days: n))
                }
            }
            // A day after today (an event ahead of the pair's watermark) enters every window at its start.
            var nextDay: DayNumber?
            for (day, aggregate) in days where day > today && aggregate != DayAggregate() && (nextDay == nil || day < nextDay!) { nextDay = day }
            if let nextDay { consider(calendar.start(of: nextDay), .entersWindows(day: nextDay)) }
        }
        if let signupAt = profile.signupAt {
            if daily { consider(calendar.start(of: today + 1), .newDay) }
            // A whole number of days: a comparison with c can flip when the value reaches c
            // (`=`, `>=`, `<`) or passes it (`=`, `>`, `<=`); with a fractional c, only at ⌈c⌉.
            let signupDay = calendar.day(of: signupAt)
            for days in thresholds[.daysSinceSignup] ?? [] where abs(days) < 1_000_000 {  // negative: a sign-up up to 24 h ahead
                let reach = DayNumber(days.rounded(.up))
                consider(calendar.start(of: signupDay + reach), .daysSinceSignup(reaches: Int(reach)))
                if days == days.rounded() { consider(calendar.start(of: signupDay + reach + 1), .daysSinceSignup(reaches: Int(reach) + 1)) }
            }
        }
        for (metric, windows) in metricWindows {
            for n in windows {
                let (oldest, next) = profile.metrics.edges(of: metric, first: today - DayNumber(n - 1), today: today, now: now, calendar: calendar)
                if let oldest { consider(calendar.start(of: oldest + DayNumber(n)), .leavesWindow(day: oldest, days: n)) }
                if let next { consider(calendar.start(of: next), .entersWindows(day: next)) }
            }
        }
        for metric in abandonments {
            if let at = profile.metrics.nextAbandonment(of: metric, after: now) { consider(at, .abandoned(metric.name)) }
        }
        for feature in continuousFeatures {
            let base: Instant?
            switch feature {
            case .hoursSinceSignup: base = profile.signupAt
            case .hoursSinceLastActivity: base = profile.lastActivityAt
            case let .hoursSinceLast(metric): base = profile.metrics.countedTime(metric, latest: true, now: now)
            case let .hoursSinceFirst(metric): base = profile.metrics.countedTime(metric, latest: false, now: now)
            default: base = nil
            }
            guard let base else { continue }
            for hours in thresholds[feature] ?? [] {
                // At the crossing (for `>=`, `=`) and just past it (for `>`).
                let crossing = base.nanoseconds + Int64((hours * 3.6e12).rounded(.up))
                consider(Instant(nanoseconds: crossing), .crosses(feature, hours, past: false))
                consider(Instant(nanoseconds: crossing + 1), .crosses(feature, hours, past: true))
            }
            if hourly.contains(feature) {
                let elapsed = now.nanoseconds - base.nanoseconds
                consider(Instant(nanoseconds: base.nanoseconds + (elapsed / Instant.nanosPerHour + 1) * Instant.nanosPerHour), .hourly(feature))
            }
        }
    }
}

/// Why time alone changes something at an instant (see `TimeTriggers.nextChangeExplained`).
enum TimeChangeReason: CustomStringConvertible {
    case leavesWindow(day: DayNumber, days: Int)
    case entersWindows(day: DayNumber)
    case newDay
    case daysSinceSignup(reaches: Int)
    case crosses(Feature, Double, past: Bool)
    case hourly(Feature)
    case abandoned(String)

    var description: String {
        switch self {
        case let .leavesWindow(day, n): "the events of \(DayCalendar.isoDate(day)) leave the \(n)-day window"
        case let .entersWindows(day): "the events of \(DayCalendar.isoDate(day)) enter the windows"
        case .newDay: "a new day: days_since_signup grows by one"
        case let .daysSinceSignup(reaches): "days_since_signup reaches \(reaches)"
        case let .crosses(feature, hours, past): "\(feature) \(past ? "passes" : "reaches") \(JSONText.number(hours))"
        case let .hourly(feature): "\(feature) grows by an hour"
        case let .abandoned(metric): "an open \(metric) instance's window passes: it counts as abandoned"
        }
    }
}
