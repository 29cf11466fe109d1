/// Which sub-groups of a segment explain a KPI's deviation from its baseline (issue 4).
///
/// For a mean-like KPI (avg, share) over groups with member shares w_g and values v_g:
/// `V − B = Σ w_g · (v_g − B)` exactly, so group g contributes `w_g · (v_g − B)`. For a sum,
/// `V − B = Σ (S_g − w_g · B)`. Ranked by contribution in the direction of the change, this
/// turns "minutes per day dropped" into "users who signed up the week of 2026-11-16 have none".
public struct DrillDownEntry: Equatable, Sendable {
    public let dimension: String
    public let group: String
    public let members: Int64
    public let value: Double?
    public let contribution: Double
}

/// Accumulates members' contributions per group, then ranks the groups.
///
/// Codable and mergeable: the KPI leader adds the accumulators other instances compute over
/// their partitions to its own (the sums are exact to merge; the ranking comes after).
public struct DrillDownAccumulator: Sendable, Codable {
    struct Cell: Codable { var members: Int64 = 0; var counted: Int64 = 0; var total: Double = 0 }
    private var cells: [String: [String: Cell]] = [:]
    private var members: Int64 = 0
    public let kind: KPIDefinition.Kind

    public init(kind: KPIDefinition.Kind) { self.kind = kind }

    /// The dimensions to split by: the signup-week cohort and every attribute a rule reads.
    public static func dimensions(_ catalog: SegmentCatalog) -> [String] {
        ["signup_week"] + catalog.features.compactMap { if case let .attribute(name) = $0 { "attr.\(name)" } else { nil } }.sorted()
    }

    /// The group of a member in each dimension.
    public static func groups(signupAt: Instant?, attributes: [String: AttributeEntry], dimensions: [String],
                              calendar: DayCalendar) -> [(String, String)] {
        dimensions.map { dimension in
            if dimension == "signup_week" {
                guard let signupAt else { return (dimension, "unknown") }
                let day = calendar.day(of: signupAt)
                let daysSinceMonday = ((Int(day) + 3) % 7 + 7) % 7  // 1970-01-01 was a Thursday
                let monday = day - DayNumber(daysSinceMonday)
                return (dimension, DayCalendar.isoDate(monday))
            }
            let name = String(dimension.dropFirst("attr.".count))
            switch attributes[name]?.value {
            case let .string(s)?: return (dimension, s)
            case let .number(n)?: return (dimension, JSONText.number(n))
            case let .bool(b)?: return (dimension, b ? "true" : "false")
            case nil: return (dimension, "null")
            }
        }
    }

    public mutating func add(contribution: Double?, groups: [(String, String)]) {
        members += 1
        for (dimension, group) in groups {
            var cell = cells[dimension, default: [:]][group, default: Cell()]
            cell.members += 1
            if let contribution { cell.counted += 1; cell.total += contribution }
            cells[dimension, default: [:]][group] = cell
        }
    }

    /// Adds another accumulator of the same KPI (other partitions' members).
    public mutating func merge(_ other: DrillDownAccumulator) {
        members += other.members
        for (dimension, groups) in other.cells {
            for (group, cell) in groups {
                var mine = cells[dimension, default: [:]][group, default: Cell()]
                mine.members += cell.members
                mine.counted += cell.counted
                mine.total += cell.total
                cells[dimension, default: [:]][group] = mine
            }
        }
    }

    /// Members added (over every merged accumulator).
    public var memberCount: Int64 { members }

    /// Groups ranked by how much of `value − baseline` they explain, strongest first.
    public func ranked(baseline: Double, limit: Int = 5) -> [DrillDownEntry] {
        guard members > 0 else { return [] }
        var entries: [DrillDownEntry] = []
        for (dimension, groups) in cells {
            for (group, cell) in groups {
                let share = Double(cell.members) / Double(members)
                let value: Double?
                let contribution: Double
                switch kind {
                case .sum:
                    value = cell.total
                    contribution = cell.total - share * baseline
                case .avg:
                    value = cell.counted > 0 ? cell.total / Double(cell.counted) : nil
                    contribution = value.map { share * ($0 - baseline) } ?? 0
                case .share:
                    value = cell.total / Double(cell.members)
                    contribution = share * (value! - baseline)
                }
                entries.append(DrillDownEntry(dimension: dimension, group: group, members: cell.members, value: value,
                                              contribution: contribution))
            }
        }
        let direction = entries.reduce(0) { $0 + $1.contribution } < 0 ? -1.0 : 1.0
        return Array(entries.sorted { ($0.contribution * direction, $0.group) > ($1.contribution * direction, $1.group) }.prefix(limit))
    }

    /// JSON for the alert message.
    public static func json(_ entries: [DrillDownEntry]) -> String {
        "[" + entries.map { entry in
            JSONText.object([("dimension", JSONText.quote(entry.dimension)), ("group", JSONText.quote(entry.group)),
                             ("members", String(entry.members)), ("value", entry.value.map(JSONText.number) ?? "null"),
                             ("contribution", JSONText.number((entry.contribution * 1e6).rounded() / 1e6))])
        }.joined(separator: ",") + "]"
    }
}
