/// Every user's state, memberships and KPI partials computed from scratch from a set of events:
/// what incremental processing must always equal (SPEC §3: state is a pure function of the
/// distinct events applied). Work grows with all the events, so it is for checks, not ingest.
public struct FromScratch: Sendable {
    public private(set) var profiles: [String: UserProfile] = [:]
    public private(set) var days: [String: [DayNumber: DayAggregate]] = [:]
    /// Per user, the segments they are in (`all` included).
    public private(set) var members: [String: Set<String>] = [:]
    public private(set) var partials = KPIPartials()

    /// - Parameter events: each distinct event once, in any order.
    public init(_ events: some Sequence<UserEvent>, catalog: SegmentCatalog, now: Instant, calendar: DayCalendar) {
        self.init(events, catalog: catalog, calendar: calendar) { _ in now }
    }

    /// - Parameter now: each user's time (their partition pair's watermark).
    public init(_ events: some Sequence<UserEvent>, catalog: SegmentCatalog, calendar: DayCalendar, now: (String) -> Instant) {
        for event in events {
            if let change = profiles[event.userID, default: UserProfile()].apply(event, calendar: calendar) {
                days[event.userID, default: [:]][change.day, default: DayAggregate()] += change.delta
            }
            _ = catalog.metrics.apply(event, to: &profiles[event.userID]!.metrics, calendar: calendar)
        }
        for (user, profile) in profiles {
            let evaluation = catalog.evaluate(profile: profile, days: days[user] ?? [:], now: now(user), calendar: calendar)
            members[user] = evaluation.segments
            for (segment, contributions) in evaluation.contributions {
                partials.replace(catalog.partialKeys(of: segment), old: nil, new: contributions)
            }
        }
    }
}
