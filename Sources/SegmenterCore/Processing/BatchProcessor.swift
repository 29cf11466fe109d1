/// The batch step of one partition, pure: the affected users' state, the decoded batch and the
/// clock in; the effects out (rows to write, outbox messages, timers, KPI partial moves).
///
/// The store loads what `Input` names, calls `process`, and writes the effects in one SQLite
/// transaction with the offsets; nothing here touches a file, a socket or a clock. Steps, in order:
/// 1. Records below the stored offset were applied by an earlier commit: skipped.
/// 2. An invalid record becomes a dead letter. A valid event older than the dedupe horizon
///    (behind the pair's event watermark before the batch), or on a day whose evidence is gone,
///    cannot be proven new: a dead letter too.
/// 3. A valid event whose id is in its user-day's evidence is a duplicate; otherwise its id joins
///    the evidence and the event is applied to the user's profile and day sums.
/// 4. The pair's watermark advances (`plan(_:)`, SPEC §3). Each user the batch changed
///    is re-evaluated at their latest event's time (cause `event`) and, if a timer of theirs
///    falls before the new watermark, again at the watermark (cause `time`); then the users
///    whose timers are due (cause `time`).
public struct BatchProcessor: Sendable {
    public let catalog: SegmentCatalog
    public let calendar: DayCalendar
    public let horizon: DedupeHorizon
    public let membershipTopic: String
    public let deadLetterTopic: String
    /// The pair's input topics (co-partitioned): each holds the pair's watermark back while it
    /// has a backlog.
    public let inputTopics: [String]

    public init(catalog: SegmentCatalog, calendar: DayCalendar, horizon: DedupeHorizon,
                membershipTopic: String = "segment-membership", deadLetterTopic: String = "segmenter-dlq",
                inputTopics: [String] = ["activity", "billing"]) {
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
        /// published again (the partition moved here from a state further along).
        public var restateUntil: [String: Int64] = [:]
        /// Days whose sums the warehouse owns: events on them add nothing to the sums.
        public var reconciledDays: ClosedRange<DayNumber>?
        /// The wall clock when the batch was received (dead letters carry it).
        public var receivedAt: Instant

        public init(records: [DecodedRecord], receivedAt: Instant) {
            self.records = records
            self.receivedAt = receivedAt
        }
    }

    /// What a batch will do, known before it is done: the events it will try to apply (valid,
    /// not yet committed, inside the horizon), how far each input gets, and the pair's watermark
    /// after it. The store loads the users of exactly these events, and those due by then.
    public struct Plan: Sendable {
        public let admitted: [UserEvent]
        /// Per input topic, the next offset and the latest admitted event time after the batch.
        let nextOffsets: [String: Int64]
        let eventTimes: [String: Instant]
        /// The pair's watermark once the batch is applied (SPEC §3): what its users are
        /// evaluated at and its timers fire by.
        public let watermark: PairWatermark
    }

    /// One pass over the records (the store hands the plan back in `Input.plan`, so `process`
    /// does not scan them again).
    public func plan(_ input: Input) -> Plan {
        var topics = BatchTopics(input)
        var events: [UserEvent] = []
        events.reserveCapacity(input.records.count)
        var next = input.storedOffsets
        var times = input.eventTimes
        for index in input.records.indices {
            let topic = topics.index(of: input.records[index].topic, input)
            let offset = input.records[index].offset
            guard offset >= topics.stored[topic] else { continue }
            let name = topics.names[topic]
            if offset >= next[name] ?? 0 { next[name] = offset + 1 }
            guard case let .success(event) = input.records[index].decoded,
                  horizon.admits(event.ts, at: input.watermark.events, floor: input.evidenceFloor) else { continue }
            events.append(event)
            if times[name].map({ event.ts > $0 }) ?? true { times[name] = event.ts }
        }
        var watermark = input.watermark
        watermark.advance(inputTopics.map { topic in
            let caughtUp = switch input.inputEnds {
            case .allRead: true
            case let .known(ends): ends[topic].map { next[topic] ?? 0 >= $0 } ?? false
            }
            return InputProgress(latestEventTime: times[topic], caughtUp: caughtUp)
        }, wallClock: input.wallClock)
        return Plan(admitted: events, nextOffsets: next, eventTimes: times, watermark: watermark)
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

        for record in input.records {
            let topic = topics.index(of: record.topic, input)
            guard record.offset >= topics.stored[topic] else {
                effects.outcome.alreadyApplied += 1
                continue
            }
            let event: UserEvent
            switch record.decoded {
            case let .failure(failure):
                deadLetter(record, reason: failure.reason, input: input, into: &effects)
                continue
            case let .success(decoded):
                event = decoded
            }
            if let reason = horizon.rejection(of: event.ts, at: input.watermark.events, floor: input.evidenceFloor) {
                deadLetter(record, reason: reason, input: input, into: &effects)
                effects.outcome.tooOld += 1
                continue
            }
            let day = calendar.day(of: event.ts)
            let user = users.index(of: event.userID, loaded: &loaded)
            precondition(users[user].slice.evidence != nil, "the store must load the evidence of every user with events")
            guard users[user].slice.evidence!.insert(EventEvidence.hash(event.eventID), on: day) else {
                effects.outcome.duplicates += 1
                continue
            }
            if record.offset < topics.restateUntil[topic] { users[user].restate = true }
            users[user].applied = true
            let beforeSignupCount = users[user].slice.profile!.activityBeforeSignup.count
            if let change = users[user].slice.profile!.apply(event, calendar: calendar, reconciledDays: input.reconciledDays) {
                users[user].add(change.delta, on: change.day)
                users[user].slice.days[change.day, default: DayAggregate()] += change.delta
            } else {
                if event.body.countsInDay { effects.outcome.onReconciledDays += 1 }  // no day sums only for a reconciled day
                users[user].add(DayAggregate(), on: day)  // the day's row still takes the id
            }
            switch event.body {
            case .billing: break
            case .activity where users[user].slice.profile!.activityBeforeSignup.count == beforeSignupCount: break
            default: users[user].rewrite = true
            }
            effects.outcome.applied += 1
            if users[user].latestEventTime.map({ event.ts > $0 }) ?? true { users[user].latestEventTime = event.ts }
        }
        for (topic, next) in plan.nextOffsets where next != input.storedOffsets[topic] { effects.outcome.nextOffsets[topic] = next }
        for (topic, time) in plan.eventTimes where time != input.eventTimes[topic] { effects.eventTimes[topic] = time }
        if watermark != input.watermark { effects.watermark = watermark }
        let floorDay = input.evidenceFloor.map { calendar.day(of: $0) }
        for index in users.users.indices where users[index].applied {
            let user = users[index]
            effects.profiles[user.userID] = BatchEffects.ProfileWrite(profile: user.slice.profile!, whole: user.rewrite)
            if let floorDay { users[index].slice.evidence!.forget(before: floorDay) }
            for (day, delta) in user.touched {
                effects.days.append(BatchEffects.DayWrite(userID: user.userID, day: day, delta: delta,
                                                          evidence: users[index].slice.evidence!.ids(on: day)))
            }
        }
        guard let now = watermark.clock else {
            // The pair has no time yet (an input with a backlog has delivered nothing): its users
            // wait, each with a timer at their latest event, so they are first evaluated once the
            // pair's time reaches it.
            for index in users.users.indices where users[index].applied {
                users[index].slice.due = users[index].latestEventTime
                users[index].slice.dueKnown = true
                effects.timers[users[index].userID] = .some(users[index].latestEventTime)
                effects.slices[users[index].userID] = users[index].slice
            }
            return effects
        }

        effects.slices.reserveCapacity(users.users.count)
        for index in users.users.indices where users[index].applied {
            // Their events are seen at the latest of them (not before the pair's time was, not
            // after it is).
            var seenAt = min(users[index].latestEventTime!, now)
            if let before = input.watermark.clock, before > seenAt { seenAt = before }
            bringUp(users[index].userID, &users[index].slice, eventsSeenAt: seenAt, now: now, restate: users[index].restate, into: &effects)
            effects.slices[users[index].userID] = users[index].slice
        }
        effects.outcome.noteKPIChanges(effects.partials, cause: .event)
        let changedByEvents = effects.partials.changed
        for userID in input.dueUsers where effects.slices[userID] == nil {
            // A user whose events were all duplicates is in the working set, not in `loaded`.
            let known = users.existingIndex(of: userID).map { users[$0].slice } ?? loaded.removeValue(forKey: userID)
            guard var slice = known, slice.profile != nil else {
                effects.timers[userID] = .some(nil)  // a timer without a user: nothing to wake
                continue
            }
            bringUp(userID, &slice, eventsSeenAt: nil, now: now, restate: false, into: &effects)
            effects.slices[userID] = slice
        }
        for key in effects.partials.changed.subtracting(changedByEvents) { effects.outcome.kpiCauses[key.segment] = .time }
        return effects
    }

    /// Brings one user's memberships up to the pair's time `now`, in the order things happened,
    /// so each change carries its cause (SPEC §5): a user never evaluated (everyone evaluated is
    /// in `all`), whose events came while the pair had no time, first at the latest of those
    /// (`event`); the first timer that fell due before their latest event at its instant (`time`); their
    /// events at `eventsSeenAt` (`event`); then, if a timer falls due by `now`, at `now` (`time`).
    /// - Parameter eventsSeenAt: nil for a user woken by a timer alone.
    private func bringUp(_ userID: String, _ slice: inout UserSlice, eventsSeenAt: Instant?, now: Instant, restate: Bool,
                         into effects: inout BatchEffects) {
        func step(at instant: Instant, _ cause: ChangeCause, restate: Bool = false) {
            let changes = evaluate(userID, &slice, now: instant, cause: cause, into: &effects, restate: restate)
            effects.outcome.membershipChanges += changes
            effects.outcome.membershipChangesByCause[cause, default: 0] += changes
            if cause == .time { effects.outcome.timersFired += 1 }
        }
        let seenAt = eventsSeenAt ?? now
        if slice.memberships.isEmpty, slice.dueKnown, let pending = slice.due, pending <= seenAt, pending < now || eventsSeenAt == nil {
            step(at: pending, .event)
        }
        // A few steps at most (a catch-up batch can span days): each is strictly later, and what
        // is left is seen with the events.
        for _ in 0..<4 {
            guard let eventsSeenAt, slice.dueKnown, let due = slice.due, due < eventsSeenAt else { break }
            step(at: due, .time)
        }
        if let eventsSeenAt {
            step(at: eventsSeenAt, .event, restate: restate)
            if eventsSeenAt < now, let due = slice.due, due <= now { step(at: now, .time) }
        } else if slice.memberships.isEmpty || slice.due.map({ $0 <= now }) ?? true || !slice.dueKnown {
            step(at: now, .time)
        }
    }

    /// Re-evaluates one user at `now`: membership differences (and their messages), KPI partials
    /// by difference, and the user's next timer. The slice ends as it will be once committed
    /// (the caller decides whether it goes to `effects.slices`, the store's cache).
    /// - Parameter rebuilding: the partials are being rebuilt from empty (a config change), so
    ///   old contributions are not subtracted.
    /// - Parameter restate: publish the user's state in every segment, changed or not.
    /// - Returns: the number of membership changes published.
    @discardableResult
    public func evaluate(_ userID: String, _ slice: inout UserSlice, now: Instant, cause: ChangeCause,
                         into effects: inout BatchEffects, rebuilding: Bool = false, restate: Bool = false) -> Int {
        let firstDay = catalog.firstWindowDay(at: now, calendar: calendar)
        if slice.days.keys.contains(where: { $0 < firstDay }) { slice.days = slice.days.filter { $0.key >= firstDay } }
        let evaluation = catalog.evaluate(profile: slice.profile ?? UserProfile(), days: slice.days, now: now, calendar: calendar)
        let stored = slice.memberships
        var published = 0
        // The segments the user is in now, then those they were in and left.
        for segment in Array(evaluation.segments) + stored.keys.filter({ !evaluation.segments.contains($0) }) {
            let old = stored[segment]
            let new = evaluation.contributions[segment]
            effects.partials.replace(segment: segment, kpis: catalog.kpis(for: segment), old: rebuilding ? nil : old, new: new)
            if old != new {
                effects.memberships.append(BatchEffects.MembershipWrite(userID: userID, segment: segment, contributions: new))
            }
            if (old == nil) != (new == nil), segment != SegmentCatalog.allSegment, !restate {
                effects.messages.append(membershipMessage(userID, segment: segment, member: new != nil, asOf: effects.asOfText(now), cause: cause))
                published += 1
            }
        }
        if restate {
            for segment in catalog.segmentNames where segment != SegmentCatalog.allSegment {
                effects.messages.append(membershipMessage(userID, segment: segment, member: evaluation.contributions[segment] != nil,
                                                          asOf: effects.asOfText(now), cause: cause))
                published += 1
            }
        }
        slice.memberships = evaluation.contributions
        if !slice.dueKnown || slice.due != evaluation.nextChange { effects.timers[userID] = .some(evaluation.nextChange) }
        slice.due = evaluation.nextChange
        slice.dueKnown = true
        return published
    }

    private func deadLetter(_ record: DecodedRecord, reason: String, input: Input, into effects: inout BatchEffects) {
        let letter = DeadLetter.json(reason: reason, sourceTopic: record.topic, partition: record.partition,
                                     offset: record.offset, payload: record.payload, receivedAt: input.receivedAt)
        effects.messages.append(BatchEffects.Message(topic: deadLetterTopic, key: record.key, value: Array(letter.utf8)))
        effects.outcome.deadLettered += 1
    }

    /// A SPEC §5 membership message, built directly (this runs for every change).
    /// A user the state no longer holds (a rebuild that started after their events): they
    /// leave every segment they were published in.
    public func forget(_ userID: String, memberships: [String: [Double?]], now: Instant, cause: ChangeCause,
                       into effects: inout BatchEffects) -> Int {
        var published = 0
        for segment in memberships.keys.sorted() {
            effects.memberships.append(BatchEffects.MembershipWrite(userID: userID, segment: segment, contributions: nil))
            guard segment != SegmentCatalog.allSegment else { continue }
            effects.messages.append(membershipMessage(userID, segment: segment, member: false, asOf: effects.asOfText(now), cause: cause))
            published += 1
        }
        return published
    }

    private func membershipMessage(_ userID: String, segment: String, member: Bool, asOf: String, cause: ChangeCause) -> BatchEffects.Message {
        let text = "{\"user_id\":\(JSONText.quote(userID)),\"segment\":\(JSONText.quote(segment)),\"change\":\""
            + (member ? "enter" : "exit") + "\",\"as_of\":\"" + asOf + "\",\"cause\":\"" + cause.rawValue + "\"}"
        return BatchEffects.Message(topic: membershipTopic, key: Array(userID.utf8), value: Array(text.utf8))
    }
}
