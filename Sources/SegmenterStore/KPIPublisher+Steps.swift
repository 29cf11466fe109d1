import SegmenterCore

extension KPIPublisher {
    /// Publishes the group's KPIs up to the group's watermark `now` on the grid (SPEC §7): each
    /// step of `fold` — and each instant between them at which a pending alert's `for:` elapses
    /// or, for baselines, a day begins — as of its bucket's end (charted, kept for the day's end,
    /// alerts stepped), then the KPI deltas of the values at `now` itself, so a catch-up charts
    /// and alerts as live processing did, and the deltas topic stays one message per pair per emit.
    /// - Parameters:
    ///   - last: the last bucket the group's watermark completed (`KPIGrid.lastComplete`).
    ///   - current: the group's partials at `now` (each pair at its own clock).
    /// - Returns: the messages written.
    @discardableResult
    public func publish(_ fold: some Sequence<PartialsFold.Step>, through last: Int64, current: [KPIKey: KPIPartial], now: Instant, grid: KPIGrid,
                        catalog: SegmentCatalog, causes: [String: ChangeCause], alerts: [AlertDefinition] = [],
                        alertTopic: String = "segment-alerts", calendar: DayCalendar = .utc, drillDown: DrillDownProvider? = nil) throws -> Int {
        do {
            // One transaction for every step: a catch-up makes thousands.
            return try db.transaction {
                deferred = DeferredWrites()
                let emitted = try publishSteps(fold, through: last, current: current, now: now, grid: grid, catalog: catalog, causes: causes,
                                               alerts: alerts, alertTopic: alertTopic, calendar: calendar, drillDown: drillDown)
                try flushDeferred()
                return emitted
            }
        } catch {
            deferred = nil
            // Rolled back: what this publisher believes it published goes back to what is stored.
            try? loadPublished()
            try? loadAlertState()
            try? outboxWriter.refreshHighWater()
            throw error
        }
    }

    private func publishSteps(_ fold: some Sequence<PartialsFold.Step>, through last: Int64, current: [KPIKey: KPIPartial], now: Instant, grid: KPIGrid,
                              catalog: SegmentCatalog, causes: [String: ChangeCause], alerts: [AlertDefinition], alertTopic: String,
                              calendar: DayCalendar, drillDown: DrillDownProvider?) throws -> Int {
        var emitted = 0
        var previous: (bucket: Int64, partials: [KPIKey: KPIPartial])?
        func step(_ bucket: Int64, _ partials: [KPIKey: KPIPartial], changed: Set<String>?) throws {
            emitted += try publish(catalog: catalog, partials: partials, now: grid.end(of: bucket), causes: causes, alerts: alerts,
                                   alertTopic: alertTopic, calendar: calendar, drillDown: drillDown, step: bucket, changedSegments: changed)
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
        emitted += try publish(catalog: catalog, partials: current, now: now, causes: causes, alertTopic: alertTopic, calendar: calendar,
                               provisional: true)
        return emitted
    }

    /// The first bucket after `bucket` at which time alone can change an alert's state: a pending
    /// alert's `for:` elapses, or a day begins (drop and rise alerts compare with past days).
    func nextTick(after bucket: Int64, grid: KPIGrid, alerts: [AlertDefinition], calendar: DayCalendar) -> Int64? {
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
}
