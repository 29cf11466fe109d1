/// A `segment-alerts` message (SPEC §6): an alert changed state. The topic's schema lives here.
public struct AlertMessage: Equatable, Sendable {
    public let alert: String
    public let segment: String
    public let kpi: String
    public let state: AlertStatus.State
    public let value: Double?
    /// For drop and rise alerts: the baseline the value was compared with.
    public let baseline: Double?
    /// The level the value crossed (the threshold, or the baseline moved by the drop or rise).
    public let threshold: Double?
    public let members: Int64
    public let asOf: Instant
    /// The top contributing sub-groups of a firing drop or rise alert, as JSON.
    public let drillDown: String?

    public init(_ definition: AlertDefinition, state: AlertStatus.State, value: Double?, baseline: Double?, members: Int64, asOf: Instant,
                drillDown: String? = nil) {
        alert = definition.name
        segment = definition.segment
        kpi = definition.kpi
        self.state = state
        self.value = value
        self.baseline = KPIDelta.rounded(baseline)
        threshold = KPIDelta.rounded(definition.firingLevel(baseline: baseline))
        self.members = members
        self.asOf = asOf
        self.drillDown = drillDown
    }

    public var json: String {
        JSONText.object([
            ("alert", JSONText.quote(alert)), ("segment", JSONText.quote(segment)),
            ("kpi", JSONText.quote(kpi)), ("state", JSONText.quote(state.rawValue)),
            ("value", value.map(JSONText.number) ?? "null"),
            ("baseline", baseline.map(JSONText.number) ?? "null"),
            ("threshold", threshold.map(JSONText.number) ?? "null"),
            ("members", String(members)), ("as_of", JSONText.quote(asOf.description)),
        ] + (drillDown.map { [("drill_down", $0)] } ?? []))
    }
}
