/// A named segment: users for whom the rule is true (SPEC §4).
public struct SegmentDefinition: Sendable, Equatable {
    public let name: String
    public let ruleText: String
    public let rule: RuleExpression

    public init(name: String, ruleText: String, metrics: MetricCatalog = MetricCatalog()) throws(RuleError) {
        self.name = name
        self.ruleText = ruleText
        self.rule = try RuleParser.parseRule(ruleText, metrics: metrics.refs)
    }
}

/// One segment (`all` included) with the keys of its partials, made once per catalog.
struct SegmentSlot: Sendable, Equatable {
    let name: String
    let keys: SegmentCatalog.PartialKeys
}

/// The configured segments and KPIs. `all` is implicit and holds every user seen.
public struct SegmentCatalog: Sendable, Equatable {
    public static let allSegment = "all"
    public static let membersKPI = "members"

    public let segments: [SegmentDefinition]
    public let kpis: [KPIDefinition]
    /// User-defined metrics over any event (SPEC §4b), which rules and KPIs may read.
    public let metrics: MetricCatalog
    private let kpisBySegment: [String: [KPIDefinition]]
    /// The rules and KPI definitions as flat arrays, so evaluating a user copies no definitions.
    let rules: [NamedRule]
    struct NamedRule: Sendable, Equatable {
        let name: String
        let rule: RuleExpression
    }
    /// The rules (in `rules` order) and KPI expressions compiled, over `featureSlots`.
    let compiledRules: [CompiledExpression]
    let compiledKPIs: [CompiledExpression]
    let featureSlots: FeatureSlots
    /// Distinct lists of positions in `kpis` (a segment's KPIs), and per rule and for
    /// `all` which list is theirs: segments with the same KPIs share one contributions array.
    let kpiGroups: [[Int]]
    let kpiGroupOfRule: [Int]
    let kpiGroupOfAll: Int
    /// The segments (`all`, then the rules in order) with the keys of their partials: what the
    /// batch step visits by position; and `kpiKeys` both ways.
    let segmentSlots: [SegmentSlot]
    /// A configured segment's position in `segmentSlots`.
    let slotOfSegment: [String: Int]
    let keyLists: KPIKeyLists
    /// What in the catalog can change with the clock alone.
    public let timeTriggers: TimeTriggers
    /// Every feature any rule or KPI reads; decides which windows of days must be loaded and
    /// which clock changes can move a user.
    public let features: Set<Feature>
    /// The longest window any rule or KPI reads, in days (at least 1).
    public let longestWindow: Int
    /// `segment_volatility`: every segment also has the built-in KPIs `entered_today`,
    /// `exited_today` and `volatility` (see `SegmentVolatility`).
    public var volatility = false

    public init(segments: [SegmentDefinition] = [], kpis: [KPIDefinition] = [], metrics: MetricCatalog = MetricCatalog()) {
        self.segments = segments
        self.kpis = kpis
        self.metrics = metrics
        let names = [Self.allSegment] + segments.map(\.name)
        // Which KPIs each segment keeps, decided once; the lists below are views of it.
        let kpiIndices = Dictionary(uniqueKeysWithValues: names.map { name in
            (name, kpis.indices.filter { kpis[$0].segments == nil || kpis[$0].segments!.contains(name) })
        })
        kpisBySegment = kpiIndices.mapValues { $0.map { kpis[$0] } }
        let partialKeys = names.map { name in
            PartialKeys(members: KPIKey(segment: name, kpi: Self.membersKPI), kpis: kpiIndices[name]!.map { KPIKey(segment: name, kpi: kpis[$0].name) })
        }
        keyLists = KPIKeyLists(partialKeys)
        rules = segments.map { NamedRule(name: $0.name, rule: $0.rule) }
        let slots = FeatureSlots(segments.map(\.rule) + kpis.map(\.expression))
        featureSlots = slots
        compiledRules = segments.map { CompiledExpression($0.rule, slots: slots) }
        compiledKPIs = kpis.map { CompiledExpression($0.expression, slots: slots) }
        var groups: [[Int]] = []
        func group(_ segment: String) -> Int {
            let list = kpiIndices[segment]!
            if let known = groups.firstIndex(of: list) { return known }
            groups.append(list)
            return groups.count - 1
        }
        kpiGroupOfAll = group(Self.allSegment)
        kpiGroupOfRule = segments.map { group($0.name) }
        kpiGroups = groups
        segmentSlots = zip(names, partialKeys).map { SegmentSlot(name: $0, keys: $1) }
        slotOfSegment = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
        timeTriggers = TimeTriggers(segments: segments, kpis: kpis)
        features = Set(slots.features)
        longestWindow = features.compactMap(\.windowDays).max() ?? 1
    }

    /// The first day any window can reach at `now`: older day sums cannot change a rule or KPI.
    public func firstWindowDay(at now: Instant, calendar: DayCalendar) -> DayNumber {
        calendar.day(of: now) - DayNumber(longestWindow - 1)
    }

    /// Segment names including `all`, in configuration order.
    public var segmentNames: [String] { [Self.allSegment] + segments.map(\.name) }

    /// The KPIs kept for `segment`, besides `members`.
    public func kpis(for segment: String) -> [KPIDefinition] {
        kpisBySegment[segment] ?? kpis.filter { $0.segments == nil || $0.segments!.contains(segment) }
    }


    /// Identifies the definitions: a change means every user must be re-evaluated (cause `config`).
    public var fingerprint: String {
        (metrics.metrics.map { "metric \($0.name): \($0.canonical)" } + segments.map { "segment \($0.name): \($0.ruleText)" } + kpis.map { "kpi \($0.name) \($0.kind.rawValue): \($0.expressionText) @ \($0.segments?.joined(separator: ",") ?? "*")" })
            .joined(separator: "\n")
    }
}
