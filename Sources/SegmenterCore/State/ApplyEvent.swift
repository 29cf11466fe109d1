/// What applying one event did to the per-day sums, for the store to add to its row.
public struct DayDelta: Equatable, Sendable {
    public var day: DayNumber
    public var delta: DayAggregate
}

extension UserProfile {
    /// Applies one event to a user's rolling state.
    ///
    /// Order-independent by construction: sums commute, `signupAt` is a minimum, and
    /// latest-wins values compare (`ts`, `event_id`). The caller has already removed duplicates.
    /// - Parameter reconciledDays: days whose sums the warehouse owns (reconciliation took its
    ///   values); an activity or billing event on such a day adds nothing to the sums.
    /// - Returns: the change to the per-day sums for the event's local day, if any.
    /// - Important: Call inside the ingest transaction; the caller commits offsets with it.
    public mutating func apply(_ event: UserEvent, calendar: DayCalendar, reconciledDays: ClosedRange<DayNumber>? = nil) -> DayDelta? {
        let version = Version(ts: event.ts, eventID: event.eventID)
        if let reconciledDays, event.body.countsInDay, reconciledDays.contains(calendar.day(of: event.ts)) {
            // The warehouse's count already holds this activity; its time still tells whether it
            // came before the sign-up, which the per-day count cannot.
            if case .activity = event.body { noteActivityTime(event.ts) }
            return nil
        }
        switch event.body {
        case let .signup(attributes):
            if signupAt == nil || event.ts < signupAt! {
                signupAt = event.ts
                activityBeforeSignup.removeAll { $0 >= event.ts }
            }
            merge(attributes, version: version)
            return nil
        case let .profile(attributes):
            merge(attributes, version: version)
            return nil
        case let .accountOpened(accountID):
            setAccount(accountID, open: true, version: version)
            return nil
        case let .accountClosed(accountID):
            setAccount(accountID, open: false, version: version)
            return nil
        case let .activity(_, micros):
            lifetimeActivities += 1
            lifetimeActiveMicros += micros
            noteActivityTime(event.ts)
            return DayDelta(day: calendar.day(of: event.ts), delta: DayAggregate(activities: 1, activeMicros: micros))
        case let .billing(cents):
            lifetimeSpendCents += cents
            return DayDelta(day: calendar.day(of: event.ts), delta: DayAggregate(spendCents: cents))
        }
    }

    /// The latest activity, and activities before the sign-up (see `activityBeforeSignup`).
    private mutating func noteActivityTime(_ ts: Instant) {
        if lastActivityAt == nil || ts > lastActivityAt! { lastActivityAt = ts }
        if signupAt == nil || ts < signupAt! {
            let index = activityBeforeSignup.firstIndex { $0 > ts } ?? activityBeforeSignup.endIndex
            activityBeforeSignup.insert(ts, at: index)
        }
    }

    /// Attribute names one user may hold (removed ones included, which keep their version):
    /// past it, a new name is not stored (counted in `BatchOutcome.attributesDropped`), so no
    /// producer can grow one user's row without bound.
    public static let maximumAttributes = 1_000

    /// How many of `changes`' names are new and would not fit under `maximumAttributes`.
    public func attributesOverCap(_ changes: [String: AttributeValue?]) -> Int {
        let new = changes.keys.reduce(0) { $0 + (attributes[$1] == nil ? 1 : 0) }
        return max(0, new - max(0, Self.maximumAttributes - attributes.count))
    }

    private mutating func merge(_ changes: [String: AttributeValue?], version: Version) {
        for (name, value) in changes {
            if let current = attributes[name] {
                if current.version >= version { continue }
            } else if attributes.count >= Self.maximumAttributes {
                continue
            }
            attributes[name] = AttributeEntry(value: value, version: version)
        }
    }

    private mutating func setAccount(_ accountID: String, open: Bool, version: Version) {
        if let current = accounts[accountID], current.version >= version { return }
        accounts[accountID] = AccountEntry(open: open, version: version)
    }
}

extension UserEvent.Body {
    /// Activity and billing events add to per-day sums; the rest change the profile only.
    public var countsInDay: Bool {
        switch self {
        case .activity, .billing: true
        default: false
        }
    }

    /// Applying it twice is applying it once (latest-wins values, the earliest sign-up), so it
    /// may be applied at any age, past the dedupe horizon (SPEC §7).
    public var isIdempotent: Bool { !countsInDay }
}

extension UserProfile {
    /// Takes a sign-up time from the warehouse (reconciliation: the warehouse wins).
    ///
    /// Moving it earlier is exact (activities before the old sign-up that are not before the
    /// new one count from now on). Moving it later cannot re-classify activities between the
    /// two instants, whose times are not kept; they stay counted as after sign-up.
    public mutating func correctSignup(to instant: Instant) {
        signupAt = instant
        activityBeforeSignup.removeAll { $0 >= instant }
    }

    /// Adds a warehouse correction of one day's sums to the lifetime totals.
    public mutating func addToLifetime(_ delta: DayAggregate) {
        lifetimeSpendCents += delta.spendCents
        lifetimeActivities += delta.activities
        lifetimeActiveMicros += delta.activeMicros
    }
}
