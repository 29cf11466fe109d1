/// Applying events to metrics, and settling sequence instances no event can change any more.
///
/// Order-independent like the built-in sums (SPEC §3): counts and sums add, distinct values are
/// sets, a sequence instance is completed by any `then` in its window whichever arrives first.
extension MetricCatalog {
    /// Applies one event (already deduplicated) to the user's metrics.
    /// - Returns: the rows to add to, per metric and day the event touched.
    @discardableResult
    public func apply(_ event: UserEvent, to metrics: inout UserMetrics, calendar: DayCalendar) -> [MetricDayWrite] {
        var writes: [MetricDayWrite] = []
        apply(event, to: &metrics, calendar: calendar, writes: &writes)
        return writes
    }

    /// Applies one event, adding what it changed to `writes` (one entry per user-day and metric:
    /// a batch writes each row once, however many of its events touch it).
    /// - Parameter frozenDays: days whose counts and sums reconciliation took from the warehouse
    ///   (`metrics_sql`): an event on one of them already counts there, so it is not added again.
    public func apply(_ event: UserEvent, to metrics: inout UserMetrics, calendar: DayCalendar, writes: inout [MetricDayWrite],
                      frozenDays: ClosedRange<DayNumber>? = nil) {
        guard !self.metrics.isEmpty else { return }
        let day = calendar.day(of: event.ts)
        let frozen = frozenDays?.contains(day) ?? false
        // By index: each definition is read in place, not copied (measured: a copy per metric per
        // event, retains and releases of its trees, cost more than the filters).
        for index in self.metrics.indices {
            let key = keys[index]
            switch self.metrics[index].kind {
            case .count:
                guard self.metrics[index].filters[0].matches(event) else { continue }
                add(frozen ? nil : 1, key: key, day: day, at: event.ts, to: &metrics, writes: &writes, userID: event.userID)
            case let .sum(value, _):
                guard self.metrics[index].filters.first?.matches(event) ?? true, let number = value.value(of: event).number else { continue }
                add(frozen ? nil : Self.millionths(number), key: key, day: day, at: event.ts, to: &metrics, writes: &writes, userID: event.userID)
            case let .countDistinct(value, _):
                guard self.metrics[index].filters.first?.matches(event) ?? true, let distinct = DistinctValue(value.value(of: event)) else { continue }
                metrics.totals[key, default: MetricTotals()].distinct.insert(distinct)
                metrics.totals[key]!.noteTime(event.ts)
                if metrics.days[key, default: [:]][day, default: MetricDay()].values.insert(distinct).inserted {
                    Self.note(MetricDayWrite(userID: event.userID, day: day, key: key, delta: 0, values: [distinct]), in: &writes)
                }
            case let .sequence(_, _, within, _):
                if self.metrics[index].filters[1].matches(event) { noteThen(event.ts, key: key, withinNanos: within, in: &metrics) }
                if self.metrics[index].filters[0].matches(event) { open(event.ts, key: key, withinNanos: within, in: &metrics) }
            }
        }
    }

    /// Adds `write` to the entry for its user-day and metric, or appends it.
    static func note(_ write: MetricDayWrite, in writes: inout [MetricDayWrite]) {
        if let index = writes.lastIndex(where: { $0.day == write.day && $0.key == write.key && $0.userID == write.userID }) {
            writes[index].delta = saturating(writes[index].delta, write.delta)
            writes[index].values += write.values
        } else {
            writes.append(write)
        }
    }

    /// Settles the instances of every sequence whose outcome no admissible event can change:
    /// those with `first + within` before `floor`, which must be no later than the dedupe
    /// horizon's cutoff (no event before it is admitted any more) nor than the pair's clock
    /// (every evaluation to come is after it). A counted one moves into its day's total; the
    /// value read is the same before and after.
    /// - Returns: the rows to add to, or nil when nothing settled.
    public func settle(_ metrics: inout UserMetrics, floor: Instant, userID: String, calendar: DayCalendar) -> [MetricDayWrite]? {
        var writes: [MetricDayWrite] = []
        var changed = false
        for metric in self.metrics {
            guard case let .sequence(_, _, within, abandoned) = metric.kind, var totals = metrics.totals[metric.key] else { continue }
            let settled = totals.open.prefix { $0.first.nanoseconds &+ within < floor.nanoseconds }
            guard !settled.isEmpty || totals.thens.first.map({ $0 <= floor }) == true else { continue }
            for instance in settled where instance.counts(now: floor, withinNanos: within, abandoned: abandoned) {
                let day = calendar.day(of: instance.first)
                totals.lifetime += 1
                totals.noteTime(instance.first)
                metrics.days[metric.key, default: [:]][day, default: MetricDay()].total += 1
                Self.note(MetricDayWrite(userID: userID, day: day, key: metric.key, delta: 1), in: &writes)
            }
            totals.open.removeFirst(settled.count)
            // A late `first` must be after the cutoff, and a `then` pairs only with earlier ones.
            totals.thens.removeAll { $0 <= floor }
            metrics.totals[metric.key] = totals
            changed = true
        }
        return changed ? writes : nil
    }

    /// A sum's value in millionths, rounded half-even; beyond ±9.2e12 it saturates.
    static func millionths(_ value: Double) -> Int64 {
        let scaled = (value * 1_000_000).rounded(.toNearestOrEven)
        if scaled >= 9.2e18 { return 9_200_000_000_000_000_000 }
        if scaled <= -9.2e18 { return -9_200_000_000_000_000_000 }
        return Int64(scaled)
    }

    /// Adds `amount` to the day and the lifetime; nil (a frozen day) only notes when it happened.
    private func add(_ amount: Int64?, key: MetricKey, day: DayNumber, at ts: Instant, to metrics: inout UserMetrics,
                     writes: inout [MetricDayWrite], userID: String) {
        var totals = metrics.totals[key] ?? MetricTotals()
        totals.noteTime(ts)
        guard let amount else {
            metrics.totals[key] = totals
            return
        }
        totals.lifetime = Self.saturating(totals.lifetime, amount)
        metrics.totals[key] = totals
        let dayTotal = metrics.days[key]?[day]?.total ?? 0
        metrics.days[key, default: [:]][day, default: MetricDay()].total = Self.saturating(dayTotal, amount)
        Self.note(MetricDayWrite(userID: userID, day: day, key: key, delta: amount), in: &writes)
    }

    public static func saturating(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }

    /// A `first` event opens an instance, completed at once by a `then` already applied in its window.
    private func open(_ ts: Instant, key: MetricKey, withinNanos: Int64, in metrics: inout UserMetrics) {
        var totals = metrics.totals[key, default: MetricTotals()]
        let completed = totals.thens.contains { $0 > ts && $0.nanoseconds <= ts.nanoseconds &+ withinNanos }
        let index = totals.open.firstIndex { $0.first > ts } ?? totals.open.endIndex
        totals.open.insert(SequenceInstance(first: ts, completed: completed), at: index)
        metrics.totals[key] = totals
    }

    /// A `then` event completes every open instance whose window holds it, and is kept for late `first`s.
    private func noteThen(_ ts: Instant, key: MetricKey, withinNanos: Int64, in metrics: inout UserMetrics) {
        var totals = metrics.totals[key, default: MetricTotals()]
        for index in totals.open.indices where totals.open[index].first < ts && ts.nanoseconds <= totals.open[index].first.nanoseconds &+ withinNanos {
            totals.open[index].completed = true
        }
        let index = totals.thens.firstIndex { $0 > ts } ?? totals.thens.endIndex
        totals.thens.insert(ts, at: index)
        metrics.totals[key] = totals
    }
}
