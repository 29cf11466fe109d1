/// One partition's KPI partials over recent event time: its partials now (at its pair's clock)
/// and what each recent bucket of the KPI grid added (`KPIGrid`), so its partials as of the end of
/// any covered bucket are known — however far the pair has run ahead of the group's watermark
/// in one batch. The KPI leader keeps one per partition (SPEC §7: KPI series and alerts follow
/// the history).
public struct PartialsTimeline: Equatable, Sendable {
    /// The partials at the pair's clock.
    public private(set) var current: [KPIKey: KPIPartial]
    /// The bucket of the pair's clock (nil: no time yet, so no member and no change).
    public private(set) var clockBucket: Int64?
    /// What each bucket from `coveredFrom` through `clockBucket` added (a bucket absent: nothing).
    public private(set) var deltas: [Int64: [KPIKey: KPIPartial]]
    /// From this bucket on, every bucket's changes are known (nil: none is).
    public private(set) var coveredFrom: Int64?

    public init(current: [KPIKey: KPIPartial] = [:], clockBucket: Int64? = nil, deltas: [Int64: [KPIKey: KPIPartial]] = [:],
                coveredFrom: Int64? = nil) {
        self.current = current
        self.clockBucket = clockBucket
        self.deltas = deltas
        self.coveredFrom = coveredFrom
    }

    /// The partials as of the end of `bucket`: the current ones less what later buckets added;
    /// nil when a later bucket's changes are not known.
    public func partials(atEndOf bucket: Int64) -> [KPIKey: KPIPartial]? {
        guard let clockBucket, bucket < clockBucket else { return current }
        guard let coveredFrom, bucket + 1 >= coveredFrom else { return nil }
        var result = current
        for (later, changes) in deltas where later > bucket {
            for (key, change) in changes { result[key, default: KPIPartial()] += KPIPartial(counted: -change.counted, total: -change.total) }
        }
        return result
    }

    /// A newer report of the partition: its partials and clock, and the changes of every bucket
    /// from `from` through its clock's bucket. Knowledge of earlier buckets is kept where the two
    /// reports' windows meet.
    public mutating func receive(current: [KPIKey: KPIPartial], clockBucket: Int64?, from: Int64, deltas: [Int64: [KPIKey: KPIPartial]]) {
        if let known = coveredFrom, let previous = self.clockBucket, from <= previous + 1, from >= known {
            coveredFrom = known
        } else {
            coveredFrom = from
        }
        self.deltas = self.deltas.filter { $0.key < from }.merging(deltas.filter { $0.key >= from }) { $1 }
        self.current = current
        self.clockBucket = clockBucket
    }

    /// Forgets the changes of buckets through `bucket` (folded: no value before its end is asked for again).
    public mutating func forget(through bucket: Int64) {
        deltas = deltas.filter { $0.key > bucket }
        if let covered = coveredFrom { coveredFrom = max(covered, bucket + 1) }
    }
}

/// The group's KPI partials bucket by bucket, from each partition's timeline: what the KPI leader
/// publishes, charts and steps alerts with, as of each bucket's end (SPEC §7).
public enum PartialsFold {
    public struct Step: Equatable, Sendable {
        public let bucket: Int64
        public let partials: [KPIKey: KPIPartial]
        /// The segments whose partials moved since the fold's previous step (nil: the first, or not known).
        public let changedSegments: Set<String>?

        public init(bucket: Int64, partials: [KPIKey: KPIPartial], changedSegments: Set<String>? = nil) {
            self.bucket = bucket
            self.partials = partials
            self.changedSegments = changedSegments
        }
    }

    /// The group's partials as of the first bucket after `folded`, then as of every later bucket
    /// through `last` in which some partition's partials changed (between two steps nothing
    /// did). Buckets some partition cannot tell (their changes are no longer known) are skipped,
    /// the earliest first, and returned as `skipped`.
    /// - Parameter folded: the last bucket already published (nil: none; from the earliest change known).
    public static func steps(after folded: Int64?, through last: Int64, partitions: [PartialsTimeline])
        -> (steps: Steps, skipped: ClosedRange<Int64>?) {
        let start = folded.map { $0 + 1 } ?? min(partitions.compactMap { $0.deltas.keys.min() }.min() ?? last, last)
        guard start <= last else { return (.none, nil) }
        // The first bucket every partition can tell: coverage only grows towards the present.
        let first = partitions.reduce(start) { first, partition in
            guard let clockBucket = partition.clockBucket, first < clockBucket else { return first }
            guard let covered = partition.coveredFrom else { return max(first, clockBucket) }
            return max(first, min(covered == Int64.min ? covered : covered - 1, clockBucket))
        }
        guard first <= last else { return (.none, start...last) }
        var global: [KPIKey: KPIPartial] = [:]
        for partition in partitions {
            for (key, value) in partition.partials(atEndOf: first) ?? partition.current { global[key, default: KPIPartial()] += value }
        }
        // Each later bucket with its partitions' changes, gathered in one pass over what changed
        // (asking every partition about every bucket was a lookup per partition per minute).
        var changes: [Int64: [[KPIKey: KPIPartial]]] = [:]
        for partition in partitions {
            for (bucket, delta) in partition.deltas where bucket > first && bucket <= last { changes[bucket, default: []].append(delta) }
        }
        let later = changes.sorted { $0.key < $1.key }.map { (bucket: $0.key, changes: $0.value) }
        return (Steps(first: Step(bucket: first, partials: global), later: later), first > start ? start...(first - 1) : nil)
    }

    /// The steps of one fold, made as they are read: a catch-up folds tens of thousands of
    /// buckets, and holding every step's partials at once cost hundreds of megabytes.
    public struct Steps: Sequence, Sendable {
        let first: Step?
        /// The later buckets in order, each with the changes of the partitions that moved in it.
        let later: [(bucket: Int64, changes: [[KPIKey: KPIPartial]])]

        public static let none = Steps(first: nil, later: [])

        /// A fold of one step (the leader's, when every bucket before `last` was skipped).
        public static func only(_ step: Step) -> Steps { Steps(first: step, later: []) }

        public var isEmpty: Bool { first == nil }
        public var underestimatedCount: Int { first == nil ? 0 : 1 + later.count }

        public func makeIterator() -> Iterator { Iterator(steps: self, global: first?.partials ?? [:]) }

        public struct Iterator: IteratorProtocol {
            let steps: Steps
            var global: [KPIKey: KPIPartial]
            var position = -1

            public mutating func next() -> Step? {
                defer { position += 1 }
                guard let first = steps.first else { return nil }
                if position < 0 { return first }
                guard position < steps.later.count else { return nil }
                let (bucket, changes) = steps.later[position]
                var changed: Set<String> = []
                for partitionChanges in changes {
                    for (key, change) in partitionChanges {
                        global[key, default: KPIPartial()] += change
                        changed.insert(key.segment)
                    }
                }
                return Step(bucket: bucket, partials: global, changedSegments: changed)
            }
        }
    }
}
