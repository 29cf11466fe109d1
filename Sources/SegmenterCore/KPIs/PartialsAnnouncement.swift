/// One input partition's KPI partials, as the instance that owns the partition announces them to
/// the rest of its consumer group (internal topic `segmenter-kpi-partials`, key = partition).
///
/// KPIs are global (SPEC §5) but each instance holds only its partitions' partials; the KPI
/// leader adds the latest announcement of every partition it does not own to its own. Values are
/// absolute, not differences, so an announcement lost or read twice does no harm: the next one
/// supersedes it, and a compacted topic keeps only the latest per partition.
public struct PartialsAnnouncement: Equatable, Sendable {
    public var partition: Int32
    public var partials: [KPIKey: KPIPartial]
    /// The consumer group: the leader ignores another deployment's announcements.
    public var group: String
    /// Who announced it (`group.instance.id`, else host and process), for operators and `inspect`.
    public var instance: String
    /// Where that instance's HTTP API answers (nil: it serves none): how a command or another
    /// instance asks the owner of a partition about its users.
    public var api: String?
    /// The pair's watermark when announced: the leader's group watermark is the earliest.
    public var clock: Instant?
    /// Whether the pair's inputs were read to their end (a pair without a clock holds the group
    /// back only while it has a backlog).
    public var caughtUp: Bool
    /// What each recent bucket of event time added to the partials, for every bucket from
    /// `bucketsFrom` through the clock's (absent: nothing): the leader reads the partition's
    /// partials as of those buckets' ends (`PartialsTimeline`). nil: none (an older release).
    public var bucketsFrom: Int64?
    public var buckets: [Int64: [KPIKey: KPIPartial]] = [:]

    /// How far before its clock an announcement carries the buckets' changes (event time): a pair
    /// that ran further ahead of the group's watermark between two announcements has the leader
    /// skip those buckets.
    public static let bucketWindowSeconds: Int64 = 2 * 3600

    public init(partition: Int32, partials: [KPIKey: KPIPartial], group: String = "segmenter", instance: String, api: String? = nil,
                clock: Instant?, caughtUp: Bool = false) {
        self.api = api
        self.partition = partition
        self.partials = partials
        self.group = group
        self.instance = instance
        self.clock = clock
        self.caughtUp = caughtUp
    }

    public var watermark: PairWatermark { PairWatermark(clock: clock, caughtUp: caughtUp) }

    /// The partition as the leader's timeline of it should read after this announcement.
    public func timeline(after previous: PartialsTimeline?, grid: KPIGrid) -> PartialsTimeline {
        var timeline = previous ?? PartialsTimeline()
        let clockBucket = clock.map(grid.bucket(of:))
        timeline.receive(current: partials, clockBucket: clockBucket, from: bucketsFrom ?? clockBucket.map { $0 + 1 } ?? Int64.max,
                         deltas: buckets)
        return timeline
    }

    /// The message key: one per partition, so compaction keeps the latest.
    public static func key(partition: Int32) -> String { "partition-\(partition)" }

    /// JSON; totals are written with Swift's shortest round-tripping form, so they read back bit for bit.
    public func encoded() -> [UInt8] {
        func entries(_ partials: [KPIKey: KPIPartial]) -> String {
            "[" + partials.keys.sorted().map { key in
                let partial = partials[key]!
                return JSONText.object([
                    ("segment", JSONText.quote(key.segment)), ("kpi", JSONText.quote(key.kpi)),
                    ("counted", String(partial.counted)), ("total", partial.total.isFinite ? "\(partial.total)" : "0"),
                ])
            }.joined(separator: ",") + "]"
        }
        let buckets = "[" + self.buckets.keys.sorted().map { JSONText.object([("bucket", String($0)), ("partials", entries(self.buckets[$0]!))]) }
            .joined(separator: ",") + "]"
        return Array(JSONText.object([
            ("partition", String(partition)), ("group", JSONText.quote(group)), ("instance", JSONText.quote(instance)),
            ("api", api.map(JSONText.quote) ?? "null"),
            ("clock", clock.map { JSONText.quote($0.description) } ?? "null"), ("caught_up", caughtUp ? "true" : "false"),
            ("partials", entries(partials)),
            ("buckets_from", bucketsFrom.map(String.init) ?? "null"), ("buckets", buckets),
        ]).utf8)
    }

    /// nil for anything that is not an announcement (the topic is internal, but be safe).
    public static func decode(_ bytes: [UInt8]) -> PartialsAnnouncement? {
        guard let json = try? JSONParser.parse(bytes),
              case let .number(partitionText)? = json["partition"], let partition = Int32(partitionText),
              case let .array(entries)? = json["partials"], let partials = decodePartials(entries) else { return nil }
        var instance = "", group = ""
        if case let .string(text)? = json["instance"] { instance = text }
        if case let .string(text)? = json["group"] { group = text }
        var clock: Instant?
        if case let .string(text)? = json["clock"], case let .success(instant) = RFC3339.parse(text) { clock = instant }
        var caughtUp = false
        if case let .bool(value)? = json["caught_up"] { caughtUp = value }
        var api: String?
        if case let .string(text)? = json["api"] { api = text }
        var announcement = PartialsAnnouncement(partition: partition, partials: partials, group: group, instance: instance, api: api,
                                                clock: clock, caughtUp: caughtUp)
        if case let .number(text)? = json["buckets_from"], let from = Int64(text), case let .array(buckets)? = json["buckets"] {
            for bucket in buckets {
                guard case let .number(number)? = bucket["bucket"], let index = Int64(number),
                      case let .array(entries)? = bucket["partials"], let changes = decodePartials(entries) else { return nil }
                announcement.buckets[index] = changes
            }
            announcement.bucketsFrom = from
        }
        return announcement
    }

    private static func decodePartials(_ entries: [JSONValue]) -> [KPIKey: KPIPartial]? {
        var partials: [KPIKey: KPIPartial] = [:]
        for entry in entries {
            guard case let .string(segment)? = entry["segment"], case let .string(kpi)? = entry["kpi"],
                  case let .number(countedText)? = entry["counted"], let counted = Int64(countedText),
                  case let .number(totalText)? = entry["total"], let total = Double(totalText) else { return nil }
            partials[KPIKey(segment: segment, kpi: kpi)] = KPIPartial(counted: counted, total: total)
        }
        return partials
    }
}

/// The KPI leader's view of the whole group: the latest announcement of every partition.
public struct GroupPartials: Sendable {
    public private(set) var announced: [Int32: PartialsAnnouncement] = [:]
    /// Per partition, its partials over recent buckets, from its announcements.
    public private(set) var timelines: [Int32: PartialsTimeline] = [:]
    public let grid: KPIGrid

    public init(grid: KPIGrid = .default) { self.grid = grid }

    /// Later announcements replace earlier ones (the topic's order is the owners' order).
    public mutating func receive(_ announcement: PartialsAnnouncement) {
        timelines[announcement.partition] = announcement.timeline(after: timelines[announcement.partition], grid: grid)
        announced[announcement.partition] = announcement
    }

    /// The buckets through `bucket` are published: their changes are not needed any more.
    public mutating func forget(through bucket: Int64) {
        for partition in timelines.keys { timelines[partition]!.forget(through: bucket) }
    }

    /// The global partials: partitions this instance owns count with their live partials, the
    /// others with their latest announcement. `missing` lists partitions of `0..<partitionCount`
    /// that neither holds: publishing without them would report their members as gone.
    public func global(owned: [Int32: KPIPartials], partitionCount: Int) -> (partials: [KPIKey: KPIPartial], missing: [Int32]) {
        var parts = owned.values.map(\.values)
        var missing: [Int32] = []
        for partition in 0..<Int32(partitionCount) where owned[partition] == nil {
            if let announcement = announced[partition] { parts.append(announcement.partials) } else { missing.append(partition) }
        }
        return (KPIPartials.sum(values: parts), missing)
    }

    /// The group's watermark (SPEC §3) and the pair that holds it back.
    public struct Watermark: Equatable, Sendable {
        public var time: Instant?
        public var heldBackBy: Int32?

        public init(time: Instant? = nil, heldBackBy: Int32? = nil) {
            self.time = time
            self.heldBackBy = heldBackBy
        }

        /// Over `pairs` alone.
        public init(owned pairs: [Int32: PairWatermark]) {
            time = PairWatermark.group(pairs.values)
            heldBackBy = time.flatMap { time in pairs.filter { $0.value.clock == time }.keys.min() }
        }
    }

    /// Over every partition of `0..<partitionCount`: owned pairs with their live watermarks, the
    /// others as last announced; a partition never announced leaves the time unknown.
    public func watermark(owned: [Int32: PairWatermark], partitionCount: Int) -> Watermark {
        var pairs = owned
        for partition in 0..<Int32(partitionCount) where owned[partition] == nil {
            guard let announcement = announced[partition] else { return Watermark() }
            pairs[partition] = announcement.watermark
        }
        return Watermark(owned: pairs)
    }
}
