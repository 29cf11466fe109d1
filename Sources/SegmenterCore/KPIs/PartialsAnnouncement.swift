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
    /// Who announced it (host and process), for operators reading the topic.
    public var instance: String
    /// The partition's event clock when announced.
    public var clock: Instant?

    public init(partition: Int32, partials: [KPIKey: KPIPartial], group: String = "segmenter", instance: String, clock: Instant?) {
        self.partition = partition
        self.partials = partials
        self.group = group
        self.instance = instance
        self.clock = clock
    }

    /// The message key: one per partition, so compaction keeps the latest.
    public static func key(partition: Int32) -> String { "partition-\(partition)" }

    /// JSON; totals are written with Swift's shortest round-tripping form, so they read back bit for bit.
    public func encoded() -> [UInt8] {
        let entries = partials.keys.sorted().map { key in
            let partial = partials[key]!
            return JSONText.object([
                ("segment", JSONText.quote(key.segment)), ("kpi", JSONText.quote(key.kpi)),
                ("counted", String(partial.counted)), ("total", partial.total.isFinite ? "\(partial.total)" : "0"),
            ])
        }
        return Array(JSONText.object([
            ("partition", String(partition)), ("group", JSONText.quote(group)), ("instance", JSONText.quote(instance)),
            ("clock", clock.map { JSONText.quote($0.description) } ?? "null"),
            ("partials", "[" + entries.joined(separator: ",") + "]"),
        ]).utf8)
    }

    /// nil for anything that is not an announcement (the topic is internal, but be safe).
    public static func decode(_ bytes: [UInt8]) -> PartialsAnnouncement? {
        guard let json = try? JSONParser.parse(bytes),
              case let .number(partitionText)? = json["partition"], let partition = Int32(partitionText),
              case let .array(entries)? = json["partials"] else { return nil }
        var partials: [KPIKey: KPIPartial] = [:]
        for entry in entries {
            guard case let .string(segment)? = entry["segment"], case let .string(kpi)? = entry["kpi"],
                  case let .number(countedText)? = entry["counted"], let counted = Int64(countedText),
                  case let .number(totalText)? = entry["total"], let total = Double(totalText) else { return nil }
            partials[KPIKey(segment: segment, kpi: kpi)] = KPIPartial(counted: counted, total: total)
        }
        var instance = "", group = ""
        if case let .string(text)? = json["instance"] { instance = text }
        if case let .string(text)? = json["group"] { group = text }
        var clock: Instant?
        if case let .string(text)? = json["clock"], case let .success(instant) = RFC3339.parse(text) { clock = instant }
        return PartialsAnnouncement(partition: partition, partials: partials, group: group, instance: instance, clock: clock)
    }
}

/// The KPI leader's view of the whole group: the latest announcement of every partition.
public struct GroupPartials: Sendable {
    public private(set) var announced: [Int32: PartialsAnnouncement] = [:]

    public init() {}

    /// Later announcements replace earlier ones (the topic's order is the owners' order).
    public mutating func receive(_ announcement: PartialsAnnouncement) { announced[announcement.partition] = announcement }

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
}
