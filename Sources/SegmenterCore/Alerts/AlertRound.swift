/// Computes the top contributing sub-groups for a firing `drop`/`rise` alert, given its baseline.
/// It may throw when the answer is not at hand yet (the group's is gathered off the commit
/// thread): the step that asked ends, and is taken again later.
public typealias DrillDownProvider = (AlertDefinition, Double) throws -> [DrillDownEntry]

/// Every alert stepped once at `now` (SPEC §6). Pure: the values, partials, end-of-day history
/// and the statuses before are parameters; the KPI publisher stores what comes out, in the
/// transaction that writes its messages.
public struct AlertRound {
    /// Each alert's status after the step.
    public var statuses: [String: AlertStatus] = [:]
    /// One message per alert whose state changed.
    public var messages: [AlertMessage] = []
    /// Each alert's value and baseline as evaluated, for `inspect alerts`.
    public var readings: [String: (value: Double?, baseline: Double?)] = [:]

    /// - Parameter drillDown: asked once per alert that fires with a baseline (drop and rise).
    public init(_ alerts: [AlertDefinition], after before: [String: AlertStatus], values: [KPIKey: Double?],
                partials: [KPIKey: KPIPartial], history: [KPIKey: [DayNumber: Double]], now: Instant, today: DayNumber,
                drillDown: DrillDownProvider?) throws {
        for alert in alerts {
            let key = KPIKey(segment: alert.segment, kpi: alert.kpi)
            let value = values[key] ?? nil
            let members = partials[KPIKey(segment: alert.segment, kpi: SegmentCatalog.membersKPI)]?.counted ?? 0
            let baseline: Double? = switch alert.condition {
            case .threshold: nil
            case .drop, .rise: alert.baseline.value(history: history[key] ?? [:], today: today)
            }
            let (status, change) = alert.step(before[alert.name] ?? AlertStatus(), value: value, baseline: baseline, members: members, now: now)
            statuses[alert.name] = status
            readings[alert.name] = (value, baseline)
            guard let change else { continue }
            // Only drop/rise alerts have a baseline, and so a deviation to explain.
            var drill: String?
            if change == .firing, let baseline, let drillDown { drill = DrillDownAccumulator.json(try drillDown(alert, baseline)) }
            messages.append(AlertMessage(alert, state: change, value: value, baseline: baseline, members: members, asOf: now, drillDown: drill))
        }
    }
}
