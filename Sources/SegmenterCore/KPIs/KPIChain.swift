/// The KPI leader's published state, stepped as a pure value (SPEC §5, §6, §7): each step takes
/// the group's partials at an instant and returns what to write — KPI deltas, the days that
/// closed, chart points, alert changes — with the state after it. The KPI publisher stores the
/// state and writes a run's steps in one transaction; a run that fails leaves the state it had.
public struct KPIChain: Sendable {
    /// The last published value and `seq` of a (segment, kpi) pair.
    public struct Link: Equatable, Sendable {
        public var value: Double?
        public var seq: Int64
        public init(value: Double?, seq: Int64) {
            self.value = value
            self.seq = seq
        }
    }

    public var published: [KPIKey: Link] = [:]
    /// End-of-day values per pair: the baselines of `drop`/`rise` alerts.
    public var history: [KPIKey: [DayNumber: Double]] = [:]
    /// The day of the last step; when the clock passes it, its values become end-of-day history.
    public var currentDay: DayNumber?
    /// The values as of the last step (not a provisional publish): what a day's end keeps.
    public var steppedValues: [KPIKey: Double?] = [:]
    /// The last bucket of the KPI grid stepped (`KPIGrid`): the next step is the bucket after it.
    public var foldedBucket: Int64?
    public var alertStatus: [String: AlertStatus] = [:]
    /// The drill-down of each alert's latest firing (JSON), kept while it fires.
    public var drillDowns: [String: String] = [:]
    /// The last evaluation of each alert (value, baseline), for `inspect alerts`.
    public var alertReadings: [String: (value: Double?, baseline: Double?)] = [:]

    public init() {}

    /// What one step writes, in the order the publisher writes it.
    public struct Step {
        public let now: Instant
        /// The grid bucket stepped (nil: a publish at `now` that is not a step).
        public let bucket: Int64?
        /// A publish of the KPI deltas alone (the current values at the watermark, between steps).
        public let provisional: Bool
        public var deltas: [(key: KPIKey, link: Link, json: String)] = []
        /// Days the clock passed, with each pair's value at their end.
        public var closedDays: [(DayNumber, [KPIKey: Double])] = []
        /// Values that differ from the last step's, to chart at `now`.
        public var charted: [(KPIKey, Double?)] = []
        /// The alert statuses before and after the step (its transitions are the firing periods).
        public var statusesBefore: [String: AlertStatus] = [:]
        public var statuses: [String: AlertStatus] = [:]
        public var readings: [String: (value: Double?, baseline: Double?)] = [:]
        /// The drill-down kept for each firing alert.
        public var drillDowns: [String: String] = [:]
        public var alertMessages: [AlertMessage] = []
        /// The day of `now`: the chain's `currentDay` after the step.
        public let day: DayNumber
        /// False when nothing needs writing (a provisional publish without changes, or a
        /// publish at `now` that moved nothing).
        public var writes = true

        /// The messages this step sends.
        public var messageCount: Int { deltas.count + alertMessages.count }
    }

    /// Steps the chain to `now` with `partials` as of then. Every pair whose value changed gets
    /// its next link (unless `bucket` is set: a step charts and alerts, and the deltas topic
    /// stays coalesced to one message per pair per emit, SPEC §5), the values are charted and,
    /// past midnight, the previous day's end recorded; alerts are stepped.
    /// - Parameters:
    ///   - bucket: a step of the KPI grid, with `now` its end (nil: a publish at `now`).
    ///   - changedSegments: for a step, the segments whose partials moved since the previous
    ///     step (nil: not known). The others keep their values uncomputed: a catch-up steps every
    ///     minute of event time, and most minutes move a few segments.
    ///   - provisional: only the KPI deltas of changed values.
    ///   - drillDown: asked for each drop or rise alert that starts firing; what it throws ends
    ///     the step (and the run) with the chain unchanged.
    public mutating func step(catalog: SegmentCatalog, partials: [KPIKey: KPIPartial], now: Instant, causes: [String: ChangeCause],
                              alerts: [AlertDefinition] = [], calendar: DayCalendar = .utc, drillDown: DrillDownProvider? = nil,
                              bucket: Int64? = nil, changedSegments: Set<String>? = nil, provisional: Bool = false) throws -> Step {
        let today = calendar.day(of: now)
        var step = Step(now: now, bucket: bucket, provisional: provisional, day: today)
        var current: [KPIKey: Double?] = [:]
        // The segments to compute: all, or only those that moved (the day's volatility KPIs move
        // with the day itself; the first step of a day computes everything).
        var keys = catalog.kpiKeys
        if bucket != nil, let changedSegments, !catalog.volatility, currentDay == today, steppedValues.count == keys.count {
            keys = changedSegments.flatMap { segment in catalog.definedPartialKeys(of: segment).map { [$0.members] + $0.kpis } ?? [] }
            current = steppedValues
        }
        for key in keys {
            let value = KPIDelta.rounded(catalog.value(of: key, in: partials, day: today))
            current[key] = value
            guard bucket == nil, let delta = KPIDelta.next(
                after: published[key].map { ($0.value, $0.seq) }, key: key, value: value,
                members: partials[KPIKey(segment: key.segment, kpi: SegmentCatalog.membersKPI)]?.counted ?? 0,
                asOf: now, cause: causes[key.segment] ?? .event) else { continue }
            step.deltas.append((key, Link(value: value, seq: delta.seq), delta.json))
        }
        if provisional {
            step.writes = !step.deltas.isEmpty
            for (key, link, _) in step.deltas { published[key] = link }
            return step
        }
        step.closedDays = closedDays(today: today)
        var history = self.history
        for (day, values) in step.closedDays { for (key, value) in values { history[key, default: [:]][day] = value } }
        let round = try AlertRound(alerts, after: alertStatus, values: current, partials: partials, history: history,
                                   now: now, today: today, drillDown: drillDown)
        step.statusesBefore = alertStatus
        (step.statuses, step.readings, step.alertMessages) = (round.statuses, round.readings, round.messages)
        var drillDowns = self.drillDowns
        for message in round.messages where message.drillDown != nil { drillDowns[message.alert] = message.drillDown }
        step.drillDowns = drillDowns.filter { step.statuses[$0.key]?.state == .firing }
        let statusChanged = round.statuses != alertStatus.filter { round.statuses[$0.key] != nil }
        // The series records a step's values that differ from the last step's (a provisional
        // publish in between may already have sent them); the others keep their last step's value.
        step.charted = keys.compactMap { key in
            let value = current[key] ?? nil
            if let before = steppedValues[key], before == value { return nil }
            return (key, value)
        }
        alertReadings = round.readings
        guard !step.deltas.isEmpty || !step.charted.isEmpty || !step.closedDays.isEmpty || !round.messages.isEmpty || statusChanged
              || currentDay == nil || bucket != nil else {
            step.writes = false
            return step
        }
        for (key, link, _) in step.deltas { published[key] = link }
        self.history = history
        self.drillDowns = drillDowns
        currentDay = today
        steppedValues = current
        if let bucket { foldedBucket = bucket }
        alertStatus.merge(round.statuses) { $1 }
        return step
    }

    /// Steps the chain along `fold` up to the group's watermark `now` on the grid (SPEC §7): each
    /// step — and each instant between them at which a pending alert's `for:` elapses or, for
    /// baselines, a day begins — as of its bucket's end, then the KPI deltas of the values at
    /// `now` itself (provisionally), so a catch-up charts and alerts as live processing did, and
    /// the deltas topic stays one message per pair per emit.
    /// - Parameters:
    ///   - last: the last bucket the group's watermark completed (`KPIGrid.lastComplete`).
    ///   - current: the group's partials at `now` (each pair at its own clock).
    ///   - write: called with every step that writes, in order.
    /// - Returns: the messages the run sends.
    public mutating func run(_ fold: some Sequence<PartialsFold.Step>, through last: Int64, current: [KPIKey: KPIPartial], now: Instant,
                             grid: KPIGrid, catalog: SegmentCatalog, causes: [String: ChangeCause], alerts: [AlertDefinition] = [],
                             calendar: DayCalendar = .utc, drillDown: DrillDownProvider? = nil,
                             write: (Step) throws -> Void) throws -> Int {
        var emitted = 0
        var previous: (bucket: Int64, partials: [KPIKey: KPIPartial])?
        func step(_ bucket: Int64, _ partials: [KPIKey: KPIPartial], changed: Set<String>?) throws {
            let stepped = try self.step(catalog: catalog, partials: partials, now: grid.end(of: bucket), causes: causes, alerts: alerts,
                                        calendar: calendar, drillDown: drillDown, bucket: bucket, changedSegments: changed)
            try write(stepped)
            emitted += stepped.messageCount
            previous = (bucket, partials)
        }
        // Between steps nothing moved: ticks and the closing step change no segment's partials.
        func ticks(before limit: Int64) throws {
            while let (bucket, partials) = previous, let tick = nextTick(after: bucket, grid: grid, alerts: alerts, calendar: calendar), tick < limit {
                try step(tick, partials, changed: [])
            }
        }
        for next in fold {
            try ticks(before: next.bucket)
            try step(next.bucket, next.partials, changed: next.changedSegments)
        }
        try ticks(before: last + 1)
        if let (bucket, partials) = previous, bucket < last { try step(last, partials, changed: []) }  // folded through `last`
        // The latest values (each pair at its own clock), provisionally: the next steps restate them exactly.
        let latest = try self.step(catalog: catalog, partials: current, now: now, causes: causes, calendar: calendar, provisional: true)
        if latest.writes { try write(latest) }
        return emitted + latest.messageCount
    }

    /// The first bucket after `bucket` at which time alone can change an alert's state: a pending
    /// alert's `for:` elapses, or a day begins (drop and rise alerts compare with past days).
    public func nextTick(after bucket: Int64, grid: KPIGrid, alerts: [AlertDefinition], calendar: DayCalendar) -> Int64? {
        var next: Int64?
        func consider(_ instant: Instant) {
            let candidate = grid.bucket(of: instant)
            if candidate > bucket, next.map({ candidate < $0 }) ?? true { next = candidate }
        }
        for alert in alerts {
            if let since = alertStatus[alert.name]?.pendingSince { consider(since.adding(seconds: alert.forSeconds)) }
            if case .threshold = alert.condition { continue }
            consider(calendar.start(of: calendar.day(of: grid.end(of: bucket)) + 1))
        }
        return next
    }

    /// When the clock has moved past `currentDay`, the last stepped values become that day's
    /// end-of-day values (days skipped without any step get none).
    func closedDays(today: DayNumber) -> [(DayNumber, [KPIKey: Double])] {
        guard let day = currentDay, today > day else { return [] }
        let values = steppedValues.isEmpty ? published.compactMapValues { $0.value } : steppedValues.compactMapValues { $0 }
        return values.isEmpty ? [] : [(day, values)]
    }
}
