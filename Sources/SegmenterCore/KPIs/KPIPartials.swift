/// Identifies one KPI of one segment.
///
/// Hashes once, when made: partials live in dictionaries keyed by it that a catch-up touches
/// millions of times (a key per contribution change, per bucket step), and hashing two strings
/// each time was a tenth of the CPU. Hot paths reuse the catalog's keys (`SegmentCatalog.partialKeys`).
public struct KPIKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let segment: String
    public let kpi: String
    private let hash: Int
    public init(segment: String, kpi: String) {
        self.segment = segment
        self.kpi = kpi
        var hasher = Hasher()
        hasher.combine(segment)
        hasher.combine(kpi)
        hash = hasher.finalize()
    }
    public static func == (a: KPIKey, b: KPIKey) -> Bool { a.hash == b.hash && a.segment == b.segment && a.kpi == b.kpi }
    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    /// What dictionaries ask for: the hash made once, mixed with the table's seed by a
    /// multiply-xorshift (the hash is already SipHash's, so no second SipHash round is needed).
    public func _rawHashValue(seed: Int) -> Int {
        var x = UInt64(bitPattern: Int64(hash ^ seed))
        x = (x ^ (x >> 33)) &* 0xff51afd7ed558ccd
        x = (x ^ (x >> 33)) &* 0xc4ceb9fe1a85ec53
        return Int(Int64(bitPattern: x ^ (x >> 33)))
    }
    public static func < (a: KPIKey, b: KPIKey) -> Bool { (a.segment, a.kpi) < (b.segment, b.kpi) }
    public var description: String { "\(segment)/\(kpi)" }
}

/// Sums that make a KPI: how many members have a non-null value, and the total of those values.
/// Partials of different partitions (or instances) add up to the global partial.
public struct KPIPartial: Equatable, Sendable {
    public var counted: Int64 = 0
    public var total: Double = 0
    public init(counted: Int64 = 0, total: Double = 0) {
        self.counted = counted
        self.total = total
    }
    public static func += (a: inout KPIPartial, b: KPIPartial) {
        a.counted += b.counted
        a.total += b.total
    }
}

/// Per (segment, kpi) partials, maintained by differences as members enter, leave or change.
public struct KPIPartials: Equatable, Sendable {
    public var values: [KPIKey: KPIPartial] = [:]
    /// Keys changed since the last `takeChanged()` (or with bucket deltas not yet taken), for
    /// writing back.
    public var changed: Set<KPIKey> {
        var keys = changedOutsideBuckets
        for deltas in bucketDeltas.values { keys.formUnion(deltas.keys) }
        return keys
    }
    /// Keys changed while no bucket was set; a change in a bucket is found in `bucketDeltas`
    /// (one hash table fewer per contribution change: measured, ~a third of `add`).
    private var changedOutsideBuckets: Set<KPIKey> = []
    /// The event-time bucket (`KPIGrid`) the changes being made happened in; nil: not recorded
    /// by bucket (a re-summing from nothing).
    public var bucket: Int64?
    /// The local day of the changes being made (for `SegmentVolatility`); nil: not counted.
    public var day: DayNumber?
    /// Since the last `takeBucketDeltas()`: per bucket, what its changes added to each key. The
    /// KPI leader reads a partition's partials at any recent bucket from them (SPEC §7: the KPI
    /// series follow the history, whatever the batching).
    public private(set) var bucketDeltas: [Int64: [KPIKey: KPIPartial]] = [:]

    public init(values: [KPIKey: KPIPartial] = [:]) { self.values = values }

    /// Replaces a user's contribution to `segment`: nil means "not a member".
    /// - Parameter keys: the segment's keys (`SegmentCatalog.partialKeys(of:)`).
    public mutating func replace(_ keys: SegmentCatalog.PartialKeys, old: [Double?]?, new: [Double?]?) {
        guard old != new else { return }
        guard let bucket else {
            Self.forEachChange(keys, old: old, new: new) { key, change in add(key, change) }
            return
        }
        // The bucket's table looked up once for all of the segment's keys.
        Self.apply(keys, old: old, new: new, values: &values, deltas: &bucketDeltas[bucket, default: [:]])
    }

    private static func apply(_ keys: SegmentCatalog.PartialKeys, old: [Double?]?, new: [Double?]?,
                              values: inout [KPIKey: KPIPartial], deltas: inout [KPIKey: KPIPartial]) {
        forEachChange(keys, old: old, new: new) { key, change in
            values[key, default: KPIPartial()] += change
            deltas[key, default: KPIPartial()] += change
        }
    }

    /// What replacing `old` with `new` changes, key by key (`members` first).
    @inline(__always)
    private static func forEachChange(_ keys: SegmentCatalog.PartialKeys, old: [Double?]?, new: [Double?]?,
                                      _ body: (KPIKey, KPIPartial) -> Void) {
        let delta = (new == nil ? 0 : 1) - (old == nil ? 0 : 1)
        if delta != 0 { body(keys.members, KPIPartial(counted: Int64(delta), total: Double(delta))) }
        for index in keys.kpis.indices {
            let before = old.flatMap { index < $0.count ? $0[index] : nil }
            let after = new.flatMap { index < $0.count ? $0[index] : nil }
            guard before != after else { continue }
            var change = KPIPartial()
            if let before { change.counted -= 1; change.total -= before }
            if let after { change.counted += 1; change.total += after }
            body(keys.kpis[index], change)
        }
    }

    mutating func add(_ key: KPIKey, _ change: KPIPartial) {
        values[key, default: KPIPartial()] += change
        if let bucket {
            // Grown from empty, not reserved: the store's bucket log keeps each bucket's table
            // whole (measured: room for 24 keys per bucket doubled the peer shape's peak RSS).
            bucketDeltas[bucket, default: [:]][key, default: KPIPartial()] += change
        } else {
            changedOutsideBuckets.insert(key)
        }
    }

    /// Records a change that happened in `bucket` without a member's contribution behind it (a
    /// re-summing after a definition change: the difference of the new sums from the old).
    public mutating func record(_ change: KPIPartial, of key: KPIKey, inBucket bucket: Int64) {
        bucketDeltas[bucket, default: [:]][key, default: KPIPartial()] += change
    }

    /// `key`'s value was set without a change to record by bucket: it is written back.
    mutating func markChanged(_ key: KPIKey) { changedOutsideBuckets.insert(key) }

    public mutating func takeChanged() -> Set<KPIKey> {
        defer { changedOutsideBuckets = [] }
        return changed
    }

    /// `takeChanged()` followed by `takeBucketDeltas()`, without gathering the keys.
    public mutating func takeBucketDeltasForgettingChanges() -> [Int64: [KPIKey: KPIPartial]] {
        changedOutsideBuckets = []
        return takeBucketDeltas()
    }

    public mutating func takeBucketDeltas() -> [Int64: [KPIKey: KPIPartial]] {
        defer { bucketDeltas = [:] }
        return bucketDeltas
    }
}

extension KPIPartials {
    /// The global partials: the sum over partitions (or instances).
    public static func sum(_ parts: some Sequence<KPIPartials>) -> [KPIKey: KPIPartial] { sum(values: parts.map(\.values)) }

    public static func sum(values parts: some Sequence<[KPIKey: KPIPartial]>) -> [KPIKey: KPIPartial] {
        var global: [KPIKey: KPIPartial] = [:]
        for part in parts {
            for (key, partial) in part { global[key, default: KPIPartial()] += partial }
        }
        return global
    }
}

extension SegmentCatalog {
    /// Every (segment, kpi) pair the catalog defines, `members` first per segment (then the
    /// volatility KPIs when on).
    public var kpiKeys: [KPIKey] { volatility ? keyLists.withVolatility : keyLists.plain }

    /// `kpiKeys` for both settings of `volatility`, made once (the KPI leader reads them every step).
    struct KPIKeyLists: Sendable, Equatable {
        let plain: [KPIKey]
        let withVolatility: [KPIKey]

        /// - Parameter segments: each segment's keys, `all` first.
        init(_ segments: [PartialKeys]) {
            plain = segments.flatMap { [$0.members] + $0.kpis }
            withVolatility = segments.flatMap { keys in
                [keys.members] + SegmentVolatility.kpis.map { KPIKey(segment: keys.members.segment, kpi: $0) } + keys.kpis
            }
        }
    }

    /// A segment's partial keys: `members` and its KPIs in catalog order.
    public struct PartialKeys: Sendable, Equatable {
        public let members: KPIKey
        public let kpis: [KPIKey]
    }

    /// The keys of a configured segment's partials (nil: not one of the catalog's segments).
    public func definedPartialKeys(of segment: String) -> PartialKeys? { slotOfSegment[segment].map { segmentSlots[$0].keys } }

    /// The keys of `segment`'s partials, made once per catalog (an unknown segment: made now).
    public func partialKeys(of segment: String) -> PartialKeys {
        definedPartialKeys(of: segment) ?? PartialKeys(members: KPIKey(segment: segment, kpi: Self.membersKPI),
                                                      kpis: kpis(for: segment).map { KPIKey(segment: segment, kpi: $0.name) })
    }

    /// The KPIs every segment has without configuring them.
    public var builtInKPIs: [String] { [Self.membersKPI] + (volatility ? SegmentVolatility.kpis : []) }

    /// A KPI's value from its (global) partials (SPEC §8): `members` of an empty segment is 0;
    /// `sum`/`avg` over no non-null values and `share` of an empty segment are null.
    /// - Parameter day: the local day of `now`, for the volatility KPIs (nil: the latest day
    ///   any change was counted on).
    public func value(of key: KPIKey, in partials: [KPIKey: KPIPartial], day: DayNumber? = nil) -> Double? {
        let members = partials[partialKeys(of: key.segment).members]?.counted ?? 0
        if key.kpi == Self.membersKPI { return Double(members) }
        if volatility, SegmentVolatility.kpis.contains(key.kpi) {
            return SegmentVolatility.value(key.kpi, segment: key.segment, members: members, partials: partials, day: day)
        }
        guard let kpi = kpis.first(where: { $0.name == key.kpi }) else { return nil }
        let partial = partials[key] ?? KPIPartial()
        switch kpi.kind {
        case .sum: return partial.counted > 0 ? partial.total : nil
        case .avg: return partial.counted > 0 ? partial.total / Double(partial.counted) : nil
        case .share: return members > 0 ? partial.total / Double(members) : nil
        }
    }
}
