/// How far one input partition of a pair (`activity[p]` or `billing[p]`) has been read.
public struct InputProgress: Equatable, Sendable {
    /// The greatest event `ts` read from it so far; nil before its first valid event.
    public var latestEventTime: Instant?
    /// Nothing is left to read: its next offset has reached its end offset.
    public var caughtUp: Bool

    public init(latestEventTime: Instant?, caughtUp: Bool) {
        self.latestEventTime = latestEventTime
        self.caughtUp = caughtUp
    }
}

/// The time of one partition pair (SPEC §3): what a user's rules, timers and `as_of` use.
///
/// A user's events all live in one pair, so the pair's time may advance only as far as both of
/// its partitions have been read: the smaller of their latest event times. A partition with a
/// backlog holds the pair back, even one that has delivered nothing yet; a partition read to
/// its end does not (waiting for it would stop time whenever one topic is quiet). Another
/// pair running ahead never moves this one: that is what keeps a lagging partition's users
/// from being flagged by time their own events have not reached. Never goes backwards.
public struct PairWatermark: Equatable, Sendable {
    /// From event times alone. The dedupe horizon and evidence pruning use this one: a
    /// wall-clock step is no evidence that older events have all arrived.
    public private(set) var events: Instant?
    /// `events`, or later with the hybrid clock: what rules, timers and `as_of` use.
    public private(set) var clock: Instant?
    /// Whether every partition of the pair was read to its end at the last reading: a pair
    /// without a watermark holds the group's time back only while it still has a backlog.
    public private(set) var caughtUp: Bool

    public init(events: Instant? = nil, clock: Instant? = nil, caughtUp: Bool = false) {
        self.events = events
        self.clock = [clock, events].compactMap { $0 }.max()
        self.caughtUp = caughtUp
    }

    /// The reading of the pair's partitions alone: the smallest latest event time among those
    /// with a backlog (nil if one of them has delivered nothing), or, when all are read to
    /// their end, the greatest.
    public static func reading(_ inputs: [InputProgress]) -> Instant? {
        let lagging = inputs.filter { !$0.caughtUp }
        if lagging.isEmpty { return inputs.compactMap(\.latestEventTime).max() }
        var smallest: Instant?
        for input in lagging {
            guard let time = input.latestEventTime else { return nil }
            if smallest == nil || time < smallest! { smallest = time }
        }
        return smallest
    }

    /// Advances with a new reading of the pair's partitions.
    /// - Parameter wallClock: with `clock: hybrid`, the wall clock: a pair read to its end (and
    ///   with events, so its users exist) follows it, so absence is noticed when the stream
    ///   stops. A pair with a backlog never does.
    public mutating func advance(_ inputs: [InputProgress], wallClock: Instant? = nil) {
        caughtUp = inputs.allSatisfy(\.caughtUp)
        if let reading = Self.reading(inputs), events == nil || reading > events! { events = reading }
        if let events, clock == nil || events > clock! { clock = events }
        if caughtUp, events != nil, let wallClock, wallClock > clock! { clock = wallClock }
    }

    /// The group's time for global outputs (KPIs, alerts, their `as_of`, `for:` durations):
    /// the smallest clock over all pairs. A pair without a clock is skipped if it is read to its
    /// end (an empty partition) and makes the answer nil if it still has a backlog: its users'
    /// contributions are not in the partials yet.
    public static func group(_ pairs: some Sequence<PairWatermark>) -> Instant? {
        var smallest: Instant?
        for pair in pairs {
            guard let clock = pair.clock else {
                if pair.caughtUp { continue }
                return nil
            }
            if smallest == nil || clock < smallest! { smallest = clock }
        }
        return smallest
    }
}
