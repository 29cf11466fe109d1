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

}
