/// Everyone evaluated anew at one instant: after a change of segment or KPI definitions (cause
/// `config`) or when a rebuilt state is adopted (cause `rebuild`). The KPI partials are summed
/// from nothing; their difference from the old sums is recorded as the change of `now`'s bucket,
/// so the KPI leader's earlier buckets still read right (SPEC §7). Pure: the store feeds every
/// user's slice and writes the effects, in one transaction.
public struct Reevaluation {
    let processor: BatchProcessor
    let now: Instant
    let cause: ChangeCause
    let previous: KPIPartials
    let carryingDayCounts: Bool
    public private(set) var effects = BatchEffects(partials: KPIPartials())

    /// - Parameter previous: the partials summed before.
    /// - Parameter carryingDayCounts: keep the day's entry and exit counts of `previous` (a
    ///   definition change: the day's changes so far still happened); a rebuild counts anew.
    public init(_ processor: BatchProcessor, at now: Instant, cause: ChangeCause, previous: KPIPartials, carryingDayCounts: Bool) {
        self.processor = processor
        self.now = now
        self.cause = cause
        self.previous = previous
        self.carryingDayCounts = carryingDayCounts
    }

    /// Evaluates one user against their stored memberships; the changes are published.
    public mutating func evaluate(_ userID: String, _ slice: inout UserSlice) {
        effects.outcome.membershipChanges += processor.evaluate(userID, &slice, now: now, cause: cause, into: &effects, rebuilding: true)
    }

    /// The effects to write, once every user was evaluated.
    public mutating func finish() -> BatchEffects {
        if carryingDayCounts { effects.partials.carryDayCounts(from: previous) }
        let bucket = processor.kpiGrid.bucket(of: now)
        for key in Set(previous.values.keys).union(effects.partials.values.keys) {
            let before = previous.values[key] ?? KPIPartial(), after = effects.partials.values[key] ?? KPIPartial()
            let change = KPIPartial(counted: after.counted - before.counted, total: after.total - before.total)
            if change != KPIPartial() { effects.partials.record(change, of: key, inBucket: bucket) }
        }
        return effects
    }
}
