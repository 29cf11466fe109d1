/// Evaluating one user at one instant, and the membership messages that come of it.
extension BatchProcessor {
    /// Re-evaluates one user at `now`: membership differences (and their messages), KPI partials
    /// by difference, and the user's next change by time (`slice.due`). The slice ends as it will
    /// be once committed (the caller decides whether it goes to `effects.slices`, the store's cache).
    /// - Parameter rebuilding: the partials are being rebuilt from empty (a config change), so
    ///   old contributions are not subtracted.
    /// - Parameter arm: write the user's timer (the next change by time, or their first waiting
    ///   event if earlier) and their membership rows to `effects` when they moved; a timeline does
    ///   both once, at its end (measured: a row per step cost more than the evaluations).
    /// - Returns: the number of membership changes published.
    @discardableResult
    public func evaluate(_ userID: String, _ slice: inout UserSlice, now: Instant, cause: ChangeCause,
                         into effects: inout BatchEffects, rebuilding: Bool = false, arm: Bool = true) -> Int {
        var memberships = SlotMemberships(slice.memberships, catalog: catalog)
        let published = evaluate(userID, &slice, memberships: &memberships, now: now, cause: cause, into: &effects,
                                 rebuilding: rebuilding, arm: arm)
        slice.memberships = memberships.dictionary(catalog: catalog)
        return published
    }

    /// `evaluate` with the user's memberships by slot (a timeline holds them so while it runs;
    /// `slice.memberships` is left as it was).
    func evaluate(_ userID: String, _ slice: inout UserSlice, memberships: inout SlotMemberships, now: Instant, cause: ChangeCause,
                  into effects: inout BatchEffects, rebuilding: Bool = false, arm: Bool = true) -> Int {
        let firstDay = catalog.firstWindowDay(at: now, calendar: calendar)
        if slice.days.keys.contains(where: { $0 < firstDay }) { slice.days = slice.days.filter { $0.key >= firstDay } }
        if slice.profile?.metrics.days.isEmpty == false { slice.profile!.metrics.forgetDays(before: firstDay) }
        var published = 0
        effects.partials.bucket = rebuilding ? nil : kpiGrid.bucket(of: now)
        func visit(_ segment: String, keys: SegmentCatalog.PartialKeys, old: [Double?]?, new: [Double?]?) {
            if rebuilding { effects.partials.replace(keys, old: nil, new: new) }
            guard old != new else { return }
            if !rebuilding {
                effects.partials.replace(keys, old: old, new: new)
                if catalog.volatility, (old == nil) != (new == nil) {
                    effects.partials.countMembershipChange(segment: segment, entered: new != nil, day: calendar.day(of: now))
                }
            }
            effects.outcome.kpiCauses[segment] = cause
            if arm { effects.memberships.append(BatchEffects.MembershipWrite(userID: userID, segment: segment, contributions: new)) }
            if (old == nil) != (new == nil), segment != SegmentCatalog.allSegment {
                let change = MembershipChange(userID: userID, segment: segment, entered: new != nil, asOf: now, cause: cause)
                appendMembership(change, asOf: effects.asOfText(now), to: &effects.messages)
                effects.history.append(change)
                published += 1
            }
        }
        // Segment by segment in catalog order, by position: a write only where a value moved.
        let evaluation = catalog.evaluateSlots(profile: slice.profile ?? UserProfile(), days: slice.days, now: now, calendar: calendar)
        for index in catalog.segmentSlots.indices {
            let (old, new) = (memberships.slots[index], evaluation.contributions[index])
            guard rebuilding || old != new else { continue }
            visit(catalog.segmentSlots[index].name, keys: catalog.segmentSlots[index].keys, old: old, new: new)
            memberships.slots[index] = new
        }
        for (segment, old) in memberships.undefined {
            visit(segment, keys: catalog.partialKeys(of: segment), old: old, new: nil)  // a segment no longer defined: left
        }
        memberships.undefined = [:]
        let due = evaluation.nextChange
        if arm, !slice.dueKnown || slice.due != due { effects.timers[userID] = .some(due) }
        slice.due = due
        slice.dueKnown = true
        return published
    }

    /// Publishes the user's whole membership as it stands at `now` (every segment, in or out):
    /// what a partition that moved here from a state further along says about the users whose
    /// changes another instance may already have published. Never earlier than the changes it
    /// restates: `now` is the pair's clock after them.
    func restate(_ userID: String, _ memberships: SlotMemberships, at now: Instant, into effects: inout BatchEffects) {
        for index in catalog.segmentSlots.indices.dropFirst() {  // every segment but `all`
            let segment = catalog.segmentSlots[index].name
            let change = MembershipChange(userID: userID, segment: segment, entered: memberships.slots[index] != nil, asOf: now, cause: .event)
            appendMembership(change, asOf: effects.asOfText(now), to: &effects.messages)
            effects.outcome.membershipChanges += 1
        }
    }

    /// A user the state no longer holds (a rebuild that started after their events): they
    /// leave every segment they were published in.
    public func forget(_ userID: String, memberships: [String: [Double?]], now: Instant, cause: ChangeCause,
                       into effects: inout BatchEffects) -> Int {
        var published = 0
        for segment in memberships.keys.sorted() {
            effects.memberships.append(BatchEffects.MembershipWrite(userID: userID, segment: segment, contributions: nil))
            guard segment != SegmentCatalog.allSegment else { continue }
            let change = MembershipChange(userID: userID, segment: segment, entered: false, asOf: now, cause: cause)
            appendMembership(change, asOf: effects.asOfText(now), to: &effects.messages)
            effects.history.append(change)
            published += 1
        }
        return published
    }

    func deadLetter(_ record: DecodedRecord, reason: String, input: Input, into effects: inout BatchEffects) {
        let letter = DeadLetter.json(reason: reason, sourceTopic: record.topic, partition: record.partition,
                                     offset: record.offset, payload: record.payload, receivedAt: input.receivedAt)
        effects.messages.append(BatchEffects.Message(topic: deadLetterTopic, key: record.key, value: Array(letter.utf8)))
        effects.outcome.deadLettered += 1
    }

    /// A SPEC §5 membership message and, with `topics.members`, its row of the current-membership
    /// table: the same record keyed `SEGMENT|USER` on enter, a tombstone on exit, so a compacted
    /// topic holds exactly the members (the format: `MembershipChange.message`).
    private func appendMembership(_ change: MembershipChange, asOf: String, to messages: inout [BatchEffects.Message]) {
        let value = change.message(asOfText: asOf)
        messages.append(BatchEffects.Message(topic: membershipTopic, key: Array(change.userID.utf8), value: value))
        guard let membersTopic else { return }
        messages.append(BatchEffects.Message(topic: membersTopic, key: change.membersTableKey, value: change.entered ? value : [], tombstone: !change.entered))
    }
}

/// An event in a user's timeline: it takes effect at `at` (its `ts`, or for a late event the
/// pair's clock when it arrived).
public struct TimedEvent: Equatable, Sendable {
    public var event: UserEvent
    public var at: Instant
    /// false for an idempotent event beyond the dedupe horizon: it may have been applied before,
    /// so it changes the profile (harmlessly again) but never counts in a metric.
    public var countsInMetrics: Bool

    public init(event: UserEvent, at: Instant, countsInMetrics: Bool = true) {
        self.event = event
        self.at = at
        self.countsInMetrics = countsInMetrics
    }
}
