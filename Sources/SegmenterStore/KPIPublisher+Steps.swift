import SegmenterCore

extension KPIPublisher {
    /// Steps the chain along `fold` up to the group's watermark `now` (`KPIChain.run`: each grid
    /// step, the alert ticks between them, then the values at `now`) and writes every step in one
    /// transaction; if it fails, the chain stays as stored.
    /// - Parameters:
    ///   - last: the last bucket the group's watermark completed (`KPIGrid.lastComplete`).
    ///   - current: the group's partials at `now` (each pair at its own clock).
    /// - Returns: the messages written.
    @discardableResult
    public func publish(_ fold: some Sequence<PartialsFold.Step>, through last: Int64, current: [KPIKey: KPIPartial], now: Instant, grid: KPIGrid,
                        catalog: SegmentCatalog, causes: [String: ChangeCause], alerts: [AlertDefinition] = [],
                        alertTopic: String = "segment-alerts", calendar: DayCalendar = .utc, drillDown: DrillDownProvider? = nil) throws -> Int {
        var next = chain
        do {
            // One transaction for every step: a catch-up makes thousands.
            let emitted = try db.transaction {
                deferred = DeferredWrites()
                let emitted = try next.run(fold, through: last, current: current, now: now, grid: grid, catalog: catalog, causes: causes,
                                           alerts: alerts, calendar: calendar, drillDown: drillDown) { try write($0, alertTopic: alertTopic) }
                try flushDeferred()
                return emitted
            }
            chain = next
            savedOffsets = deliveredOffsets
            return emitted
        } catch {
            // Rolled back: the chain stays as stored; the outbox's next id is read again.
            deferred = nil
            try? outboxWriter.refreshHighWater()
            throw error
        }
    }
}
