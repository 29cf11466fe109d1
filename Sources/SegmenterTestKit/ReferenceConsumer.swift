import SegmenterCore

/// The membership history as SPEC §7 defines it, computed the slow and obvious way, to compare
/// what segmenter publishes with: one record at a time, in arrival order, with the pair's
/// watermark after each (SPEC §3), and after each record every user brought up to it by
/// evaluating them at **every** instant anything could change — each local midnight, each
/// crossing the test's rules name — and right after each of their events.
///
/// It shares with the service only the state maths (`UserProfile.apply`, `MetricCatalog.apply`,
/// each checked against a recomputation in the core tests) and the features of one user at one
/// instant (`FeatureEvaluator`); rules are evaluated by their tree walk, not the compiled form
/// the service uses. Each is tested on its own:
/// the ordering, the watermarks, waiting events, late events and the timers are its own, so a
/// change the service misses, stamps late or gives the wrong cause shows up as a difference.
public struct ReferenceConsumer {
    /// One published change, as compared: (user, segment) keyed, in the order published.
    public typealias Change = MembershipChange

    /// A duration after a user's instant at which a rule can flip (`hours_since_signup >= 24`:
    /// `.signup`, 24 h); the change is looked for at it and a nanosecond after it.
    public enum Base: Sendable {
        case signup, lastActivity
        /// The latest applied event the filter matches (`hours_since_last(NAME)` of a count).
        case latestMatching(RuleExpression)
    }

    public let catalog: SegmentCatalog
    public let calendar: DayCalendar
    public let horizonSeconds: Int64
    public let crossings: [(base: Base, hours: Double)]
    /// Per input topic, where it ends as far as the consumer knows: a topic read to there does
    /// not hold the pair back. A test that produced more after the service had read everything
    /// moves it on between the two.
    public var ends: [String: Int64]
    public let topics = ["activity", "billing"]

    private var latest: [String: Instant] = [:]
    private var next: [String: Int64] = [:]
    private var eventWatermark: Instant?
    public private(set) var clock: Instant?
    private var seen: Set<String> = []
    private var sequence = 0
    private var users: [String: User] = [:]
    public private(set) var published: [Change] = []

    private struct User {
        var events: [(at: Instant, seq: Int, event: UserEvent, metrics: Bool)] = []
        var applied = 0
        var profile = UserProfile()
        var days: [DayNumber: DayAggregate] = [:]
        /// nil: never evaluated (no event of theirs has taken effect).
        var segments: Set<String>?
        /// Up to where their timeline has been brought, and the last instant they were evaluated at.
        var reached: Instant?
        var lastEvaluated: Instant?
    }

    public init(catalog: SegmentCatalog, calendar: DayCalendar, horizonSeconds: Int64, crossings: [(base: Base, hours: Double)],
                ends: [String: Int64]) {
        self.catalog = catalog
        self.calendar = calendar
        self.horizonSeconds = horizonSeconds
        self.crossings = crossings
        self.ends = ends
    }

    /// One record of `topic` at `offset`: a valid event, or nil for an invalid message.
    public mutating func consume(topic: String, offset: Int64, event: UserEvent?) {
        guard offset >= next[topic] ?? 0 else { return }
        next[topic] = offset + 1
        let clockBefore = clock
        let inside = event.map { event in eventWatermark.map { event.ts.nanoseconds >= $0.nanoseconds - horizonSeconds * 1_000_000_000 } ?? true }
        // Sign-up, profile and account events count at any age (SPEC §7), but not in metrics past the horizon.
        if let event, let inside, inside || event.body.isIdempotent {
            if seen.insert(event.userID + "\u{0}" + event.eventID).inserted {
                sequence += 1
                users[event.userID, default: User()].events.append((at: clockBefore.map { max($0, event.ts) } ?? event.ts, seq: sequence,
                                                                     event: event, metrics: inside))
            }
            if latest[topic].map({ event.ts > $0 }) ?? true { latest[topic] = event.ts }
        }
        // The pair's watermark (SPEC §3): the smallest latest time of the topics with a backlog,
        // or with none, the greatest.
        let lagging = topics.filter { topic in ends[topic].map { next[topic] ?? 0 < $0 } ?? true }
        var reading: Instant?
        if lagging.isEmpty {
            reading = topics.compactMap { latest[$0] }.max()
        } else if lagging.allSatisfy({ latest[$0] != nil }) {
            reading = lagging.compactMap { latest[$0] }.min()
        }
        if let reading, eventWatermark.map({ reading > $0 }) ?? true { eventWatermark = reading }
        if let eventWatermark, clock.map({ eventWatermark > $0 }) ?? true { clock = eventWatermark }
        guard let clock else { return }
        for name in users.keys.sorted() { bringUp(name, to: clock) }
    }

    private mutating func bringUp(_ name: String, to now: Instant) {
        var user = users[name]!
        let from = user.reached
        user.reached = now
        while true {
            // The next event to take effect, and the next instant to look at by time.
            let pending = user.events[user.applied...].filter { $0.at <= now }.min { ($0.at, $0.seq) < ($1.at, $1.seq) }
            var instant: Instant?
            if user.segments != nil, let start = [from, user.lastEvaluated].compactMap({ $0 }).max() {
                instant = candidates(user, after: start).first { $0 <= now }
            }
            if let instant, pending.map({ instant <= $0.at }) ?? true {
                evaluate(&user, name, at: instant, cause: .time)
                continue
            }
            guard let pending else { break }
            let index = user.events.firstIndex { $0.seq == pending.seq }!
            user.events.swapAt(index, user.applied)
            user.applied += 1
            if let change = user.profile.apply(pending.event, calendar: calendar) { user.days[change.day, default: DayAggregate()] += change.delta }
            if pending.metrics { _ = catalog.metrics.apply(pending.event, to: &user.profile.metrics, calendar: calendar) }
            evaluate(&user, name, at: pending.at, cause: .event)
        }
        users[name] = user
    }

    /// Every instant after `start` at which time alone might change a rule, ascending.
    private func candidates(_ user: User, after start: Instant) -> [Instant] {
        var instants = [calendar.start(of: calendar.day(of: start) + 1)]  // the next local midnight
        let applied = user.events[..<user.applied].map(\.event)
        // An abandoned-sequence instance counts once its window has passed (strictly after it).
        for metric in catalog.metrics.metrics {
            guard case let .sequence(first, _, within, true) = metric.kind else { continue }
            for event in applied where first.isTrue(event.field) {
                instants.append(Instant(nanoseconds: event.ts.nanoseconds + within + 1))
            }
        }
        for (base, hours) in crossings {
            let at: Instant? = switch base {
            case .signup: user.profile.signupAt
            case .lastActivity: user.profile.lastActivityAt
            case let .latestMatching(filter): applied.filter { filter.isTrue($0.field) }.map(\.ts).max()
            }
            guard let at else { continue }
            let crossing = at.nanoseconds + Int64((hours * 3.6e12).rounded(.up))
            instants += [Instant(nanoseconds: crossing), Instant(nanoseconds: crossing + 1)]
        }
        return instants.filter { $0 > start }.sorted()
    }

    private mutating func evaluate(_ user: inout User, _ name: String, at now: Instant, cause: ChangeCause) {
        // The rules' tree walk, not the compiled form the service evaluates (`SegmentCatalog.evaluate`):
        // the history tests then check the compiler too.
        let features = FeatureEvaluator(profile: user.profile, days: user.days, now: now, calendar: calendar)
        let segments = Set(catalog.segments.filter { $0.rule.isTrue(features.value(of:)) }.map(\.name) + [SegmentCatalog.allSegment])
        let before = user.segments ?? []
        for segment in catalog.segmentNames where segment != SegmentCatalog.allSegment && segments.contains(segment) != before.contains(segment) {
            published.append(Change(userID: name, segment: segment, entered: segments.contains(segment), asOf: now, cause: cause))
        }
        user.segments = segments
        user.lastEvaluated = now
    }
}

extension MembershipChange {
    /// A `segment-membership` message's fields (SPEC §5).
    public init?(message: [UInt8]) {
        let text = String(decoding: message, as: UTF8.self)
        func field(_ name: String) -> String? {
            guard let range = text.range(of: "\"\(name)\":\"") else { return nil }
            return String(text[range.upperBound...].prefix { $0 != "\"" })
        }
        guard let user = field("user_id"), let segment = field("segment"), let change = field("change"), let asOf = field("as_of"),
              let cause = field("cause").flatMap(ChangeCause.init(rawValue:)), case let .success(instant) = RFC3339.parse(asOf) else { return nil }
        self.init(userID: user, segment: segment, entered: change == "enter", asOf: instant, cause: cause)
    }
}

extension Array where Element == ReferenceConsumer.Change {
    /// Per (user, segment), the changes in the order published: what SPEC §7 says is the same
    /// whatever the batching (the order across users is not).
    public var byUserAndSegment: [String: [ReferenceConsumer.Change]] {
        Dictionary(grouping: self) { "\($0.userID)/\($0.segment)" }
    }
}

extension Array where Element == ReferenceConsumer.Change {
    /// Who is in which segment ("user/segment") at each instant of `instants`, folding the
    /// changes by `as_of` (per pair, in publication order among equal instants): what a
    /// downstream consumer's table, chart or alert held then. A message sent twice or a
    /// restatement of the current membership folds to the same answer.
    public func members(at instants: [Instant]) -> [Instant: Set<String>] {
        var timelines: [String: [ReferenceConsumer.Change]] = [:]
        for change in self { timelines["\(change.userID)/\(change.segment)", default: []].append(change) }
        for key in timelines.keys {
            timelines[key] = timelines[key]!.enumerated().sorted { ($0.element.asOf, $0.offset) < ($1.element.asOf, $1.offset) }.map(\.element)
        }
        var result: [Instant: Set<String>] = [:]
        for instant in instants {
            var members: Set<String> = []
            for (key, changes) in timelines where changes.last(where: { $0.asOf <= instant })?.entered == true { members.insert(key) }
            result[instant] = members
        }
        return result
    }
}
