/// The batch step of one partition, pure: the affected users' state, the decoded batch and the
/// clock in; the effects out (rows to write, outbox messages, timers, KPI partial moves).
///
/// The store loads what `Input` names, calls `process`, and writes the effects in one SQLite
/// transaction with the offsets; nothing here touches a file, a socket or a clock. Steps, in order:
/// 1. Records below the stored offset were applied by an earlier commit: skipped.
/// 2. The pair's watermark is followed record by record (`plan(_:)`, SPEC §3). An invalid record
///    becomes a dead letter. A valid event older than the dedupe horizon (behind the pair's event
///    watermark when it arrived), or on a day whose evidence is gone, cannot be proven new: a
///    dead letter too.
/// 3. A valid event whose id is in its user-day's evidence is a duplicate; otherwise its id joins
///    the evidence and the event joins its user's timeline at its instant: its `ts`, or for a late
///    event (the pair's clock had passed its `ts` when it arrived) that clock.
/// 4. Each user's timeline runs in event-time order up to the pair's clock after the batch
///    (`advance`, SPEC §7): events and the instants time alone changes something interleave, so
///    every change is published at the instant it happened with its cause, however the input was
///    cut into batches. Events ahead of the clock wait (`UserSlice.pending`).
public struct BatchProcessor: Sendable {
    public let catalog: SegmentCatalog
    public let calendar: DayCalendar
    public let horizon: DedupeHorizon
    public let membershipTopic: String
    /// The compacted table of current memberships (`topics.members`), written beside each
    /// change: key `SEGMENT|USER`, the record on enter, a tombstone on exit; nil: not written.
    public let membersTopic: String?
    public let deadLetterTopic: String
    /// The pair's input topics (co-partitioned): each holds the pair's watermark back while it
    /// has a backlog.
    public let inputTopics: [String]
    /// The KPI leader's grid: partial changes are recorded by its bucket.
    public let kpiGrid: KPIGrid

    public init(catalog: SegmentCatalog, calendar: DayCalendar, horizon: DedupeHorizon,
                membershipTopic: String = "segment-membership", membersTopic: String? = nil, deadLetterTopic: String = "segmenter-dlq",
                inputTopics: [String] = ["activity", "billing"], kpiGrid: KPIGrid = .default) {
        self.kpiGrid = kpiGrid
        self.membersTopic = membersTopic
        self.catalog = catalog
        self.calendar = calendar
        self.horizon = horizon
        self.membershipTopic = membershipTopic
        self.deadLetterTopic = deadLetterTopic
        self.inputTopics = inputTopics
    }

    /// Where the pair's input partitions end, as far as the consumer knows.
    public enum InputEnds: Sendable {
        /// Everything there is has been handed over once this batch is applied: a test or a
        /// tool committing all it has.
        case allRead
        /// Per input topic, the end offset (high watermark) the consumer last saw. A topic
        /// without one is not known to be read to its end, so it holds the pair back.
        case known([String: Int64])
    }

    public struct Input: Sendable {
        public var records: [DecodedRecord]
        /// The next offset per input topic as committed: records below it are skipped.
        public var storedOffsets: [String: Int64] = [:]
        /// The pair's watermark before the batch: the dedupe horizon is measured from its
        /// `events`, so a batch is judged the same however it is cut.
        public var watermark = PairWatermark()
        /// Per input topic, the greatest event time read from this partition of it before the batch.
        public var eventTimes: [String: Instant] = [:]
        /// Where the input partitions end: a topic read to its end does not hold the pair back.
        public var inputEnds = InputEnds.allRead
        /// Events before this instant cannot be proven new: the evidence of their days is gone
        /// (pruned, or forgotten by the release the state was upgraded from).
        public var evidenceFloor: Instant?
        /// With `clock: hybrid`, the wall clock: a pair read to its end follows it.
        public var wallClock: Instant?
        /// Every user an admitted event of the batch belongs to (with their evidence), and
        /// every user in `dueUsers`.
        public var users: [String: UserSlice] = [:]
        /// Users whose timers are due at the batch's clock.
        public var dueUsers: [String] = []
        /// `plan(_:)` of this input, if the store already made it (nil: `process` makes it).
        public var plan: Plan?
        /// Per input topic, records below this offset have their users' whole membership
        /// published again at the batch's clock, after their changes (the partition moved here
        /// from a state further along: the topic must not end on what the previous owner said).
        public var restateUntil: [String: Int64] = [:]
        /// Days whose sums the warehouse owns: events on them add nothing to the sums.
        public var reconciledDays: ClosedRange<DayNumber>?
        /// Days whose metric counts and sums reconciliation took from `metrics_sql`.
        public var metricsReconciledDays: ClosedRange<DayNumber>?
        /// The wall clock when the batch was received (dead letters carry it).
        public var receivedAt: Instant

        public init(records: [DecodedRecord], receivedAt: Instant) {
            self.records = records
            self.receivedAt = receivedAt
        }
    }

    /// What a batch will do, known before it is done: the events it will try to apply (valid,
    /// not yet committed, inside the horizon), what becomes of each record, how far each input
    /// gets, and the pair's watermark after it. The store loads the users of exactly these
    /// events, and those due by then.
    public struct Plan: Sendable {
        public let admitted: [UserEvent]
        /// Per record of the input, in order.
        let verdicts: [Verdict]
        /// Per input topic, the next offset and the latest admitted event time after the batch.
        let nextOffsets: [String: Int64]
        let eventTimes: [String: Instant]
        /// The pair's watermark once the batch is applied (SPEC §3): what its users' timelines
        /// run up to.
        public let watermark: PairWatermark
    }

    /// What becomes of one record.
    enum Verdict: Sendable {
        /// Below the stored offset: an earlier commit applied it.
        case alreadyApplied
        /// A dead letter with this reason (invalid, or older than the dedupe horizon).
        case deadLetter(reason: String, tooOld: Bool)
        /// Admitted (a duplicate is found later, against the user's evidence); it takes effect at
        /// this instant. Not `provable`: a sign-up, profile or account event older than the dedupe
        /// horizon, applied although it cannot be told apart from one already applied, because
        /// applying it again changes nothing (SPEC §7); it changes the profile only, not metrics.
        case admitted(at: Instant, provable: Bool)
    }

    /// One pass over the records (the store hands the plan back in `Input.plan`, so `process`
    /// does not scan them again), following the pair's watermark record by record.
    public func plan(_ input: Input) -> Plan {
        var topics = BatchTopics(input)
        var events: [UserEvent] = []
        events.reserveCapacity(input.records.count)
        var verdicts: [Verdict] = []
        verdicts.reserveCapacity(input.records.count)
        var next = input.storedOffsets
        var times = input.eventTimes
        let ends: [Int64?] = switch input.inputEnds {
        case .allRead: inputTopics.map { topic in
            // Everything the batch holds is all there is: each topic ends after its last record.
            input.records.reduce(input.storedOffsets[topic] ?? 0) { $1.topic == topic ? max($0, $1.offset + 1) : $0 }
        }
        case let .known(known): inputTopics.map { known[$0] }
        }
        var running = RunningWatermark(start: input.watermark, latest: inputTopics.map { input.eventTimes[$0] },
                                       next: inputTopics.map { input.storedOffsets[$0] ?? 0 }, ends: ends)
        for index in input.records.indices {
            let record = input.records[index]
            let topic = topics.index(of: record.topic, input)
            let pairTopic = inputTopics.firstIndex(of: record.topic)
            guard record.offset >= topics.stored[topic] else {
                verdicts.append(.alreadyApplied)
                continue
            }
            let name = topics.names[topic]
            if record.offset >= next[name] ?? 0 { next[name] = record.offset + 1 }
            var admittedAt: Instant?
            switch record.decoded {
            case let .failure(failure):
                verdicts.append(.deadLetter(reason: failure.reason, tooOld: false))
            case let .success(event):
                let rejection = horizon.rejection(of: event.ts, at: running.events, floor: input.evidenceFloor)
                if let reason = rejection, !event.body.isIdempotent {
                    verdicts.append(.deadLetter(reason: reason, tooOld: true))
                } else {
                    // A late event takes effect when it arrived: at the pair's clock, never before it.
                    verdicts.append(.admitted(at: running.clock.map { max($0, event.ts) } ?? event.ts, provable: rejection == nil))
                    events.append(event)
                    admittedAt = event.ts
                    if times[name].map({ event.ts > $0 }) ?? true { times[name] = event.ts }
                }
            }
            if let pairTopic { running.read(topic: pairTopic, offset: record.offset, admitted: admittedAt) }
        }
        var watermark = input.watermark
        watermark.advance(inputTopics.map { topic in
            let caughtUp = switch input.inputEnds {
            case .allRead: true
            case let .known(ends): ends[topic].map { next[topic] ?? 0 >= $0 } ?? false
            }
            return InputProgress(latestEventTime: times[topic], caughtUp: caughtUp)
        }, wallClock: input.wallClock)
        return Plan(admitted: events, verdicts: verdicts, nextOffsets: next, eventTimes: times, watermark: watermark)
    }

    /// - Parameter input: its `users` are moved out (left empty) into the effects, so a user's
    ///   state is not copied on its first change (copy-on-write): measured, those copies cost
    ///   more than the SQLite reads of a streaming batch.
    public func process(_ input: inout Input, partials: KPIPartials) -> BatchEffects {
        var effects = BatchEffects(partials: partials)
        var loaded: [String: UserSlice] = [:]
        swap(&loaded, &input.users)
        var users = BatchWorkingSet()
        var topics = BatchTopics(input)
        let plan = input.plan ?? plan(input)
        input.plan = nil
        let watermark = plan.watermark

        for index in input.records.indices {
            let record = input.records[index]
            let instant: Instant
            switch plan.verdicts[index] {
            case .alreadyApplied:
                effects.outcome.alreadyApplied += 1
                continue
            case let .deadLetter(reason, tooOld):
                deadLetter(record, reason: reason, input: input, into: &effects)
                if tooOld { effects.outcome.tooOld += 1 }
                continue
            case let .admitted(at, provable):
                instant = at
                guard provable, case let .success(event) = record.decoded else {
                    // Beyond the horizon and idempotent: no evidence to check or keep, no day row.
                    if case let .success(event) = record.decoded {
                        let user = users.index(of: event.userID, loaded: &loaded)
                        users[user].arrived.append(TimedEvent(event: event, at: at, countsInMetrics: false))
                        effects.outcome.applied += 1
                        effects.outcome.idempotentBeyondHorizon += 1
                    }
                    continue
                }
            }
            guard case let .success(event) = record.decoded else { continue }
            let topic = topics.index(of: record.topic, input)
            let day = calendar.day(of: event.ts)
            let user = users.index(of: event.userID, loaded: &loaded)
            precondition(users[user].slice.evidence != nil, "the store must load the evidence of every user with events")
            guard users[user].slice.evidence!.insert(EventEvidence.hash(event.eventID), on: day) else {
                effects.outcome.duplicates += 1
                continue
            }
            if record.offset < topics.restateUntil[topic] { users[user].restate = true }
            users[user].add(DayAggregate(), on: day)  // the day's row takes the id now, the sums when the event takes effect
            users[user].arrived.append(TimedEvent(event: event, at: instant))
            effects.outcome.applied += 1
        }
        for (topic, next) in plan.nextOffsets where next != input.storedOffsets[topic] { effects.outcome.nextOffsets[topic] = next }
        for (topic, time) in plan.eventTimes where time != input.eventTimes[topic] { effects.eventTimes[topic] = time }
        if watermark != input.watermark { effects.watermark = watermark }
        for userID in input.dueUsers {
            // A user whose events were all duplicates is in the working set, not in `loaded`.
            if users.existingIndex(of: userID) != nil { continue }
            guard let slice = loaded.removeValue(forKey: userID), slice.profile != nil || !slice.pending.isEmpty else {
                effects.timers[userID] = .some(nil)  // a timer without a user: nothing to wake
                continue
            }
            users.add(userID, slice: slice)
        }

        let floorDay = input.evidenceFloor.map { calendar.day(of: $0) }
        // Sequence instances no admissible event can change any more settle (see `MetricCatalog.settle`).
        let settleFloor: Instant? = catalog.metrics.isEmpty ? nil : horizon.cutoff(at: input.watermark.events).flatMap { cutoff in
            watermark.clock.map { min(cutoff, $0) }
        }
        effects.slices.reserveCapacity(users.users.count)
        for index in users.users.indices {
            advance(&users[index], to: watermark.clock, from: input.watermark.clock,
                    frozen: FrozenDays(sums: input.reconciledDays, metrics: input.metricsReconciledDays), into: &effects)
            if let settleFloor, users[index].slice.profile?.metrics.isEmpty == false {
                let userID = users[index].userID
                if let writes = catalog.metrics.settle(&users[index].slice.profile!.metrics, floor: settleFloor, userID: userID, calendar: calendar) {
                    for write in writes { MetricCatalog.note(write, in: &users[index].metricWrites) }
                    users[index].processed = true  // the profile row holds the open instances
                }
            }
            effects.metricDays += users[index].metricWrites
            let user = users[index]
            if user.processed {
                effects.profiles[user.userID] = BatchEffects.ProfileWrite(profile: user.slice.profile!, whole: user.rewrite)
            }
            if user.pendingChanged { effects.pending[user.userID] = user.slice.pending }
            if let floorDay, !user.arrived.isEmpty { users[index].slice.evidence?.forget(before: floorDay) }
            for (day, delta) in user.touched {
                effects.days.append(BatchEffects.DayWrite(userID: user.userID, day: day, delta: delta,
                                                          evidence: users[index].slice.evidence?.ids(on: day)))
            }
            var slice = users[index].slice
            // A new user whose events all wait has no row yet: the cache must not claim one.
            if user.isNew && !user.processed { slice.profile = nil }
            effects.slices[user.userID] = slice
        }
        return effects
    }

    /// Runs one user's timeline up to the pair's clock `now`, in event-time order (SPEC §7): at
    /// each instant time alone changes something (their timer), they are evaluated with the
    /// events before it (cause `time`); each event takes effect at its instant and they are
    /// evaluated right after it (cause `event`). A timer and an event at one instant: the timer
    /// first. Events after `now` wait in `pending`; the timer armed is the earlier of the next
    /// change by time and the first waiting event.
    ///
    /// A user never evaluated (everyone evaluated is in `all`) has no timer steps: time starts
    /// for them with their first event.
    /// - Parameter from: the pair's clock before the batch (a user loaded without their timer
    ///   has it computed from there: everything up to it has fired).
    func advance(_ user: inout BatchWorkingSet.User, to now: Instant?, from clockBefore: Instant?, frozen: FrozenDays,
                 into effects: inout BatchEffects) {
        var queue = user.arrived
        if !user.slice.pending.isEmpty { queue = user.slice.pending.map { TimedEvent(event: $0, at: $0.ts) } + queue }
        if queue.count > 1, zip(queue, queue.dropFirst()).contains(where: { $0.at > $1.at }) {
            // By instant, then arrival (waiting events arrived before this batch's).
            queue = queue.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        }
        // The timer and the rows as stored (each evaluation below moves them: the memberships
        // by slot while the timeline runs, stored back at its end).
        let (stored, storedKnown) = (user.slice.due, user.slice.dueKnown)
        let storedMemberships = SlotMemberships(user.slice.memberships, catalog: catalog)
        var memberships = storedMemberships
        var evaluated = !storedMemberships.isEmpty
        var timer: Instant? = storedKnown ? stored : nil
        if !user.slice.dueKnown, evaluated, let from = clockBefore {
            timer = catalog.timeTriggers.nextChange(profile: user.slice.profile ?? UserProfile(), days: user.slice.days, now: from,
                                                    today: calendar.day(of: from), calendar: calendar)
        }
        var next = 0
        if let now {
            while true {
                let event = next < queue.count && queue[next].at <= now ? queue[next] : nil
                if evaluated, let due = timer, due <= now, event.map({ due <= $0.at }) ?? true {
                    timer = step(&user, &memberships, at: due, cause: .time, into: &effects)
                    effects.outcome.timersFired += 1
                    continue
                }
                guard let event else { break }
                apply(event.event, to: &user, frozen: frozen, metrics: event.countsInMetrics, into: &effects)
                timer = step(&user, &memberships, at: event.at, cause: .event, into: &effects)
                evaluated = true
                next += 1
            }
            if user.restate && evaluated { restate(user.userID, memberships, at: now, into: &effects) }
        }
        let changedRows = memberships.changes(from: storedMemberships, catalog: catalog)
        if !changedRows.isEmpty {
            for (segment, contributions) in changedRows {
                effects.memberships.append(BatchEffects.MembershipWrite(userID: user.userID, segment: segment, contributions: contributions))
            }
            user.slice.memberships = memberships.dictionary(catalog: catalog)
        }
        let waiting = queue[next...].map(\.event)
        if waiting != user.slice.pending {
            user.slice.pending = waiting
            user.pendingChanged = true
        }
        // Waiting events wake the user through the store's own list (`usersToWake`), not the timer.
        if !storedKnown || stored != timer { effects.timers[user.userID] = .some(timer) }
        user.slice.due = timer
        user.slice.dueKnown = true
    }

    /// One event takes effect: the user's profile and day sums (the day's row already holds its id).
    private func apply(_ event: UserEvent, to user: inout BatchWorkingSet.User, frozen: FrozenDays,
                       metrics: Bool, into effects: inout BatchEffects) {
        let beforeSignupCount = user.slice.profile!.activityBeforeSignup.count
        switch event.body {
        case let .signup(attributes), let .profile(attributes):
            effects.outcome.attributesDropped += user.slice.profile!.attributesOverCap(attributes)
        default: break
        }
        if let change = user.slice.profile!.apply(event, calendar: calendar, reconciledDays: frozen.sums) {
            user.add(change.delta, on: change.day)
            user.slice.days[change.day, default: DayAggregate()] += change.delta
        } else if event.body.countsInDay {
            effects.outcome.onReconciledDays += 1  // no day sums only for a reconciled day
        }
        if metrics, !catalog.metrics.isEmpty {
            catalog.metrics.apply(event, to: &user.slice.profile!.metrics, calendar: calendar, writes: &user.metricWrites,
                                  frozenDays: frozen.metrics)
        }
        switch event.body {
        case .billing: break
        case .activity where user.slice.profile!.activityBeforeSignup.count == beforeSignupCount: break
        default: user.rewrite = true
        }
        user.processed = true
    }

    /// Evaluates the user at `instant`; returns their next change by time.
    private func step(_ user: inout BatchWorkingSet.User, _ memberships: inout SlotMemberships, at instant: Instant, cause: ChangeCause,
                      into effects: inout BatchEffects) -> Instant? {
        // Published even while the user is restated: the previous owner may not have relayed them,
        // and a batch runs past the range it restates (SPEC §7: every change at its instant).
        let changes = evaluate(user.userID, &user.slice, memberships: &memberships, now: instant, cause: cause, into: &effects, arm: false)
        effects.outcome.membershipChanges += changes
        if changes > 0 { effects.outcome.membershipChangesByCause[cause, default: 0] += changes }
        return user.slice.due
    }
}
