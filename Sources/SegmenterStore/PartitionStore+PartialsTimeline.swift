import SegmenterCore

extension PartitionStore {
    /// This partition's KPI partials over recent event time, for the KPI leader: the partials at
    /// the pair's clock and what each bucket after `folded` added (the leader asks no earlier value).
    public func partialsTimeline(after folded: Int64?) -> PartialsTimeline {
        PartialsTimeline(current: partials.values, clockBucket: watermark.clock.map(segments.kpiGrid.bucket(of:)),
                         deltas: folded.map { folded in bucketLog.filter { $0.key > folded } } ?? bucketLog,
                         coveredFrom: max(bucketLogFrom, folded.map { $0 + 1 } ?? Int64.min))
    }

    /// The KPI leader published the buckets through `bucket` (or, on another instance, announced
    /// them): their changes are not asked for again.
    public func forgetBuckets(through bucket: Int64) {
        guard bucket >= bucketLogFrom else { return }
        bucketLog = bucketLog.filter { $0.key > bucket }
        bucketLogFrom = bucket + 1
    }

    /// A definition change or an adopted rebuild summed the partials anew at `now`: the
    /// difference from the old sums is that bucket's change, so earlier buckets still read right.
    func recordResum(from old: KPIPartials, into effects: inout BatchEffects, at now: Instant) {
        let bucket = segments.kpiGrid.bucket(of: now)
        for key in Set(old.values.keys).union(effects.partials.values.keys) {
            let before = old.values[key] ?? KPIPartial(), after = effects.partials.values[key] ?? KPIPartial()
            let change = KPIPartial(counted: after.counted - before.counted, total: after.total - before.total)
            if change != KPIPartial() { effects.partials.record(change, of: key, inBucket: bucket) }
        }
    }
}
