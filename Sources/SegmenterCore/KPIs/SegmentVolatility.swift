/// The built-in KPIs that show a flapping rule (`segment_volatility: true`): per segment,
/// `entered_today` and `exited_today` (membership changes on the local day of `now`), and
/// `volatility = (entered_today + exited_today) / members` (null for an empty segment).
///
/// Each change is counted in a partial keyed by its day (`entered_today@DAY`), maintained like
/// every other partial: summed over partitions and instances, recorded per bucket so the charts
/// and alerts step through the day, and dropped once a later day's count starts two days on.
public enum SegmentVolatility {
    public static let kpis = ["entered_today", "exited_today", "volatility"]

    static func key(segment: String, entered: Bool, day: DayNumber) -> KPIKey {
        KPIKey(segment: segment, kpi: "\(entered ? "entered_today" : "exited_today")@\(day)")
    }

    /// The day a day-keyed partial counts, nil for any other.
    public static func day(of key: KPIKey) -> DayNumber? {
        guard let at = key.kpi.firstIndex(of: "@") else { return nil }
        return DayNumber(key.kpi[key.kpi.index(after: at)...])
    }

    static func value(_ kpi: String, segment: String, members: Int64, partials: [KPIKey: KPIPartial], day: DayNumber?) -> Double? {
        guard let day = day ?? partials.keys.filter({ $0.segment == segment }).compactMap(Self.day(of:)).max() else {
            return kpi == "volatility" ? (members > 0 ? 0 : nil) : 0
        }
        let entered = Double(partials[key(segment: segment, entered: true, day: day)]?.counted ?? 0)
        let exited = Double(partials[key(segment: segment, entered: false, day: day)]?.counted ?? 0)
        switch kpi {
        case "entered_today": return entered
        case "exited_today": return exited
        default: return members > 0 ? (entered + exited) / Double(members) : nil
        }
    }
}

extension KPIPartials {
    /// Counts a user entering or leaving `segment` on `day` (the local day of the change's
    /// `now`); the first count of a day drops every segment's counts from two days before.
    public mutating func countMembershipChange(segment: String, entered: Bool, day: DayNumber) {
        let key = SegmentVolatility.key(segment: segment, entered: entered, day: day)
        if values[key] == nil {
            for old in values.keys where SegmentVolatility.day(of: old).map({ $0 < day - 1 }) ?? false {
                add(old, KPIPartial(counted: -values[old]!.counted, total: -values[old]!.total))
                values[old] = nil
            }
        }
        add(key, KPIPartial(counted: 1, total: 1))
    }

    /// The day-keyed counts of `other`, carried into partials summed again from nothing (a
    /// definition change re-evaluates everyone; the day's changes so far still happened).
    public mutating func carryDayCounts(from other: KPIPartials) {
        for (key, value) in other.values where SegmentVolatility.day(of: key) != nil {
            values[key] = value
            markChanged(key)
        }
    }
}
