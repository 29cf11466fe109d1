/// A metric's value for one user at `now` (SPEC §4b), from its totals and loaded days.
extension UserMetrics {
    /// `NAME(Nd)` or `NAME(lifetime)`. Counts and sums are 0 without a matching event.
    public func value(of metric: MetricRef, over window: MetricWindow, now: Instant, today: DayNumber, calendar: DayCalendar) -> FeatureValue {
        let totals = self.totals[metric.key]
        let byDay = days[metric.key] ?? [:]
        let first: DayNumber? = if case let .days(n) = window { today - DayNumber(n - 1) } else { nil }
        func inWindow(_ day: DayNumber) -> Bool { first.map { day >= $0 && day <= today } ?? true }
        switch metric.shape {
        case .count:
            return .number(Double(windowTotal(byDay, first: first, today: today, lifetime: totals?.lifetime)))
        case .sum:
            return .number(Double(windowTotal(byDay, first: first, today: today, lifetime: totals?.lifetime)) / 1_000_000)
        case .countDistinct:
            guard first != nil else { return .number(Double(totals?.distinct.count ?? 0)) }
            var seen: Set<DistinctValue> = []
            for (day, value) in byDay where inWindow(day) { seen.formUnion(value.values) }
            return .number(Double(seen.count))
        case let .sequence(within, abandoned):
            var count = windowTotal(byDay, first: first, today: today, lifetime: totals?.lifetime)
            for instance in totals?.open ?? [] where instance.counts(now: now, withinNanos: within, abandoned: abandoned) {
                if inWindow(calendar.day(of: instance.first)) { count += 1 }
            }
            return .number(Double(count))
        }
    }

    /// `hours_since_last(NAME)` / `hours_since_first(NAME)`: null without a counted event.
    public func hoursSince(_ metric: MetricRef, latest: Bool, now: Instant) -> FeatureValue {
        countedTime(metric, latest: latest, now: now).map { .number(now.hours(since: $0)) } ?? .null
    }

    /// The latest (or earliest) instant the metric counted at: a matching event's `ts`, or a
    /// counted sequence instance's `first`.
    func countedTime(_ metric: MetricRef, latest: Bool, now: Instant) -> Instant? {
        guard let totals = totals[metric.key] else { return nil }
        var best = latest ? totals.lastAt : totals.firstAt
        if case let .sequence(within, abandoned) = metric.shape {
            for instance in totals.open where instance.counts(now: now, withinNanos: within, abandoned: abandoned) {
                if best == nil || (latest ? instance.first > best! : instance.first < best!) { best = instance.first }
            }
        }
        return best
    }

    private func windowTotal(_ byDay: [DayNumber: MetricDay], first: DayNumber?, today: DayNumber, lifetime: Int64?) -> Int64 {
        guard let first else { return lifetime ?? 0 }
        var total: Int64 = 0
        for (day, value) in byDay where day >= first && day <= today { total = MetricCatalog.saturating(total, value.total) }
        return total
    }

    /// The oldest day in `first … today` with something counted for `metric` at `now` (the
    /// window's next edge), and the first day after `today` with something.
    func edges(of metric: MetricRef, first: DayNumber, today: DayNumber, now: Instant, calendar: DayCalendar)
        -> (oldest: DayNumber?, next: DayNumber?) {
        var oldest: DayNumber?
        var next: DayNumber?
        func note(_ day: DayNumber) {
            if day >= first && day <= today, oldest == nil || day < oldest! { oldest = day }
            if day > today, next == nil || day < next! { next = day }
        }
        for (day, value) in days[metric.key] ?? [:] where !value.isEmpty { note(day) }
        if case let .sequence(within, abandoned) = metric.shape {
            for instance in totals[metric.key]?.open ?? [] where instance.counts(now: now, withinNanos: within, abandoned: abandoned) {
                note(calendar.day(of: instance.first))
            }
        }
        return (oldest, next)
    }

    /// The next instant after `now` an abandoned-sequence instance starts to count, if any.
    func nextAbandonment(of metric: MetricRef, after now: Instant) -> Instant? {
        guard case let .sequence(within, true) = metric.shape else { return nil }
        var next: Instant?
        for instance in totals[metric.key]?.open ?? [] where !instance.completed {
            let at = Instant(nanoseconds: instance.first.nanoseconds &+ within &+ 1)
            if at > now, next == nil || at < next! { next = at }
        }
        return next
    }
}
