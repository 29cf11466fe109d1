import Testing
@testable import SegmenterCore

/// The batch step's effects for hand-written batches, with no database (Given / When / Then).
@Suite struct BatchProcessorTests {
    static let catalog = SegmentCatalog(
        segments: [
            try! SegmentDefinition(name: "spenders", ruleText: "spend(7d) > 50"),
            try! SegmentDefinition(name: "inactive_new_users", ruleText: "hours_since_signup >= 24 and activities_since_signup = 0"),
        ],
        kpis: [try! KPIDefinition(name: "spend_7d", kind: .sum, expressionText: "spend(7d)", segments: nil)])
    static let t0 = Instant(seconds: 1_793_527_200)  // 2026-11-01T10:00:00Z
    let processor = BatchProcessor(catalog: catalog, calendar: .utc, horizon: DedupeHorizon(longestWindowDays: 7))

    func text(_ message: BatchEffects.Message) -> String { String(decoding: message.value, as: UTF8.self) }

    @Test func aNewUsersFirstEventsWriteOneRowPerUserDayAndPublishTheirEntry() {
        // Given an empty partition
        var partition = InMemoryPartition(processor)
        var records = Records()
        // When a user signs up and spends 60 an hour later
        let effects = partition.commit([records.next(.signup("s1", "u1", at: Self.t0)),
                                        records.next(.charge("c1", "u1", at: Self.t0.adding(seconds: 3600), cents: 6000))])
        // Then both apply: the profile is written whole, one user-day row holds the sum and both ids
        #expect(effects.outcome.applied == 2)
        #expect(effects.profiles["u1"]?.whole == true)
        #expect(effects.profiles["u1"]?.profile.lifetimeSpendCents == 6000)
        #expect(effects.days.count == 1)
        #expect(effects.days.first?.day == DayCalendar.utc.day(of: Self.t0))
        #expect(effects.days.first?.delta == DayAggregate(spendCents: 6000))
        #expect(effects.days.first?.evidence?.contains("s1") == true && effects.days.first?.evidence?.contains("c1") == true)
        // and the user enters spenders (cause event), as of the batch's clock
        #expect(effects.messages.map(text) == [
            #"{"user_id":"u1","segment":"spenders","change":"enter","as_of":"2026-11-01T11:00:00Z","cause":"event"}"#])
        // and the timer is set to the first instant time alone can move them (24 h after sign-up)
        #expect(effects.timers["u1"] == .some(Self.t0.adding(seconds: 86_400)))
        #expect(effects.partials.values[KPIKey(segment: "spenders", kpi: "spend_7d")] == KPIPartial(counted: 1, total: 60))
        #expect(effects.outcome.nextOffsets == ["activity": 1, "billing": 1])
        #expect(effects.watermark?.clock == Self.t0.adding(seconds: 3600) && effects.eventTimes == ["activity": Self.t0, "billing": Self.t0.adding(seconds: 3600)])
    }

    @Test func redeliveredEventsAtNewOffsetsChangeNothing() {
        // Given a user's events applied
        var partition = InMemoryPartition(processor)
        var records = Records()
        let events: [UserEvent] = [.signup("s1", "u1", at: Self.t0), .charge("c1", "u1", at: Self.t0.adding(seconds: 60), cents: 9000)]
        partition.commit(events.map { records.next($0) })
        // When the same events come again (an upstream re-publish: new offsets, same ids)
        let effects = partition.commit(events.map { records.next($0) })
        // Then they are duplicates: no row, message, timer or partial moves; only the offsets advance
        #expect(effects.outcome.duplicates == 2 && effects.outcome.applied == 0)
        #expect(effects.profiles.isEmpty && effects.days.isEmpty && effects.memberships.isEmpty)
        #expect(effects.messages.isEmpty && effects.timers.isEmpty && effects.partials.changed.isEmpty)
        #expect(effects.outcome.nextOffsets == ["activity": 2, "billing": 2])
    }

    @Test func anEventOlderThanTheHorizonIsDeadLetteredNotApplied() {
        // Given a partition whose billing is at 2026-11-20 (horizon 8 days for 7-day windows)
        var partition = InMemoryPartition(processor)
        var records = Records()
        partition.commit([records.next(.charge("late", "u2", at: Self.t0.adding(seconds: 19 * 86_400), cents: 100))])
        // When an event 9 days older than that arrives
        let effects = partition.commit([records.next(.charge("old", "u1", at: Self.t0.adding(seconds: 10 * 86_400), cents: 100))])
        // Then it is a dead letter with its reason and coordinates, and nothing else happens
        #expect(effects.outcome.tooOld == 1 && effects.outcome.deadLettered == 1 && effects.outcome.applied == 0)
        #expect(effects.profiles.isEmpty && effects.days.isEmpty)
        let letter = text(effects.messages[0])
        #expect(effects.messages.count == 1 && effects.messages[0].topic == "segmenter-dlq")
        #expect(letter.contains("older than the dedupe horizon") && letter.contains("the horizon is 8d") && letter.contains("is 9d before"))
        #expect(letter.contains(#""source_topic":"billing""#) && letter.contains(#""offset":1"#))
        #expect(effects.outcome.nextOffsets == ["billing": 2])
    }

    @Test func aTopicWithABacklogHoldsThePairBackForTheHorizonAndTheClock() {
        // Given activity consumed up to 2026-11-20 while billing, with a backlog, is at 2026-11-01 (a catch-up)
        var partition = InMemoryPartition(processor)
        var records = Records()
        let billingBacklog = BatchProcessor.InputEnds.known(["activity": 1, "billing": 50])
        partition.commit([records.next(.session("a", "u1", at: Self.t0.adding(seconds: 19 * 86_400))),
                          records.next(.charge("b", "u1", at: Self.t0, cents: 100))], inputEnds: billingBacklog)
        // Then the pair's watermark is billing's
        #expect(partition.watermark.clock == Self.t0 && partition.watermark.events == Self.t0)
        // When billing's backlog from 2026-11-02 arrives
        let effects = partition.commit([records.next(.charge("c", "u1", at: Self.t0.adding(seconds: 86_400), cents: 200))],
                                       inputEnds: billingBacklog)
        // Then it is applied: the pair is not 18 days ahead of it
        #expect(effects.outcome.applied == 1 && effects.outcome.tooOld == 0)
        #expect(partition.watermark.clock == Self.t0.adding(seconds: 86_400))
        // and once billing is read to its end, activity alone sets the pair's time
        partition.commit([], inputEnds: .known(["activity": 1, "billing": 2]))
        #expect(partition.watermark.clock == Self.t0.adding(seconds: 19 * 86_400))
    }

    @Test func aUserIsNotMovedByTimeTheirPairHasNotReached() {
        // Given a user who signed up on a pair whose billing still has a backlog at the sign-up's time
        var partition = InMemoryPartition(processor)
        var records = Records()
        let ends = BatchProcessor.InputEnds.known(["activity": 100, "billing": 100])
        partition.commit([records.next(.charge("b0", "u9", at: Self.t0, cents: 1)),
                          records.next(.signup("s1", "u1", at: Self.t0))], inputEnds: ends)
        // When activity runs two days ahead while billing stays put (u1's own activity may be in its backlog)
        let effects = partition.commit([records.next(.session("x", "u2", at: Self.t0.adding(seconds: 2 * 86_400)))], inputEnds: ends)
        // Then the pair's time has not moved, so u1 is not flagged as inactive
        #expect(partition.watermark.clock == Self.t0)
        #expect(!effects.messages.map(text).contains { $0.contains("inactive_new_users") })
        #expect(partition.members["u1"] == ["all"])
    }

    @Test func usersWaitWhileThePairHasNoTimeAndAreThenMovedByTheirOwnEvents() {
        // Given a pair whose billing has a backlog but has delivered nothing yet
        var partition = InMemoryPartition(processor)
        var records = Records()
        let ends = BatchProcessor.InputEnds.known(["activity": 100, "billing": 100])
        let waiting = partition.commit([records.next(.signup("s1", "u1", at: Self.t0))], inputEnds: ends)
        // Then u1's sign-up is recorded but waits: there is no time to evaluate it at
        #expect(waiting.outcome.applied == 1 && waiting.messages.isEmpty && partition.watermark.clock == nil)
        #expect(partition.pending["u1"]?.count == 1 && partition.members["u1"] == nil)
        // and wakes u1 once the pair's time reaches it, without a timer of its own
        #expect(partition.timers["u1"] == nil && partition.usersToWake(at: Self.t0).map(\.userID) == ["u1"])
        // When billing delivers a charge of u1 an hour later
        let effects = partition.commit([records.next(.charge("c1", "u1", at: Self.t0.adding(seconds: 3600), cents: 9000))], inputEnds: ends)
        // Then the pair's time reaches the sign-up, which takes effect; the charge, ahead of it, waits
        #expect(partition.watermark.clock == Self.t0)
        #expect(effects.messages.isEmpty && partition.members["u1"] == ["all"] && partition.pending["u1"]?.count == 1)
        #expect(partition.usersToWake(at: Self.t0.adding(seconds: 3599)).isEmpty)
        #expect(partition.usersToWake(at: Self.t0.adding(seconds: 3600)).map(\.userID) == ["u1"])
        // When activity reaches two hours later
        let moved = partition.commit([records.next(.session("x", "u2", at: Self.t0.adding(seconds: 7200)))], inputEnds: ends)
        // Then the charge counts at its own instant, and the entry is its doing
        #expect(moved.messages.map(text) == [
            #"{"user_id":"u1","segment":"spenders","change":"enter","as_of":"2026-11-01T11:00:00Z","cause":"event"}"#])
        #expect(partition.pending["u1"] == nil)
    }

    @Test func theHybridClockNeverMovesAPairWithABacklog() {
        // Given a user who signed up, on a pair whose billing still has messages to read
        var partition = InMemoryPartition(processor)
        var records = Records()
        partition.commit([records.next(.signup("s1", "u1", at: Self.t0)), records.next(.charge("c0", "u9", at: Self.t0, cents: 1))],
                         inputEnds: .known(["activity": 1, "billing": 5]))
        // When the wall clock is two days later
        let wall = Self.t0.adding(seconds: 2 * 86_400)
        let held = partition.commit([], inputEnds: .known(["activity": 1, "billing": 5]), wallClock: wall)
        // Then nothing moves while the backlog is there
        #expect(held.messages.isEmpty && partition.watermark.clock == Self.t0)
        // and once billing is read to its end, the pair follows the wall clock and the timer fires
        let moved = partition.commit([], inputEnds: .known(["activity": 1, "billing": 1]), wallClock: wall)
        #expect(partition.watermark.clock == wall && partition.watermark.events == Self.t0)
        #expect(moved.messages.map(text) == [
            #"{"user_id":"u1","segment":"inactive_new_users","change":"enter","as_of":"2026-11-02T10:00:00Z","cause":"time"}"#])
    }

    @Test func aCatchUpBatchThatPassesATimerMovesTheUserByTime() {
        // Given an empty partition
        var partition = InMemoryPartition(processor)
        var records = Records()
        // When one catch-up batch holds a user's sign-up and, for another user, an event two days later
        let effects = partition.commit([records.next(.signup("s1", "u1", at: Self.t0)),
                                        records.next(.session("x", "u2", at: Self.t0.adding(seconds: 2 * 86_400)))])
        // Then u1 enters inactive_new_users by time at the instant it happened (24 h after signing
        // up), not by their sign-up and not at the end of the batch
        #expect(effects.messages.map(text).contains(
            #"{"user_id":"u1","segment":"inactive_new_users","change":"enter","as_of":"2026-11-02T10:00:00Z","cause":"time"}"#))
        #expect(effects.outcome.membershipChangesByCause[.time] == 1)
    }

    @Test func aTimerThatFellDueBeforeTheUsersOwnNextEventIsTimesDoing() {
        // Given a user who signed up, never active, with their 24-hour timer armed
        var partition = InMemoryPartition(processor)
        var records = Records()
        partition.commit([records.next(.signup("s1", "u1", at: Self.t0))])
        // When a catch-up batch brings a charge of theirs 30 hours after signing up
        let effects = partition.commit([records.next(.charge("c1", "u1", at: Self.t0.adding(seconds: 30 * 3600), cents: 100))])
        // Then they entered inactive_new_users when the timer fell due, by time, not by the charge
        #expect(effects.messages.map(text) == [
            #"{"user_id":"u1","segment":"inactive_new_users","change":"enter","as_of":"2026-11-02T10:00:00Z","cause":"time"}"#])
    }

    @Test func anEventAheadOfThePairWaitsAndCountsAtItsOwnInstant() {
        // Given a pair held at 2026-11-01 by activity's backlog while billing has reached 2026-11-03,
        // and a charge of u1 for 2026-11-03 read from billing
        var partition = InMemoryPartition(processor)
        var records = Records()
        let ends = BatchProcessor.InputEnds.known(["activity": 100, "billing": 100])
        partition.commit([records.next(.charge("b0", "u9", at: Self.t0.adding(seconds: 2 * 86_400 + 7200), cents: 1)),
                          records.next(.session("a", "u9", at: Self.t0))], inputEnds: ends)
        partition.commit([records.next(.charge("c1", "u1", at: Self.t0.adding(seconds: 2 * 86_400), cents: 9000))], inputEnds: ends)
        // Then the charge waits (u1 has no state the pair's time has reached), waking u1 at its instant
        #expect(partition.members["u1"] == nil && partition.pending["u1"]?.count == 1 && partition.timers["u1"] == nil)
        #expect(partition.usersToWake(at: Self.t0.adding(seconds: 2 * 86_400 - 1)).isEmpty)
        #expect(partition.usersToWake(at: Self.t0.adding(seconds: 2 * 86_400)).map(\.userID) == ["u1"])
        // When both inputs are read to their end (the pair moves to 2026-11-03T12:00)
        #expect(partition.watermark.clock == Self.t0)
        let effects = partition.commit([], inputEnds: .known(["activity": 1, "billing": 2]))
        // Then the charge takes effect at its own instant and u1 enters spenders by it
        #expect(effects.messages.map(text) == [
            #"{"user_id":"u1","segment":"spenders","change":"enter","as_of":"2026-11-03T10:00:00Z","cause":"event"}"#])
    }

    @Test func aDueTimerMovesAUserByTimeAlone() {
        // Given a user who signed up and never became active
        var partition = InMemoryPartition(processor)
        var records = Records()
        partition.commit([records.next(.signup("s1", "u1", at: Self.t0))])
        // When the clock passes 24 h after the sign-up with no event of theirs
        let effects = partition.commit([], wallClock: Self.t0.adding(seconds: 25 * 3600))
        // Then the timer fires (at the crossing, and just past it for a `>`) and they enter
        // inactive_new_users with cause time, at the instant they became inactive
        #expect(effects.outcome.timersFired == 2)
        #expect(effects.messages.map(text) == [
            #"{"user_id":"u1","segment":"inactive_new_users","change":"enter","as_of":"2026-11-02T10:00:00Z","cause":"time"}"#])
        #expect(effects.outcome.membershipChangesByCause == [.time: 1])
        #expect(effects.outcome.kpiCauses["inactive_new_users"] == .time)
        // and no further timer is armed (nothing else can change by time alone)
        #expect(effects.timers["u1"] == .some(nil))
    }

    @Test func aDueUserWhoseEventsAreAllDuplicatesStillMovesByTime() {
        // Given a user who signed up and never became active
        var partition = InMemoryPartition(processor)
        var records = Records()
        let signup = UserEvent.signup("s1", "u1", at: Self.t0)
        partition.commit([records.next(signup)])
        // When their sign-up is redelivered in the batch in which their timer falls due
        let effects = partition.commit([records.next(signup)], wallClock: Self.t0.adding(seconds: 25 * 3600))
        // Then the copy changes nothing, and the timer still fires
        #expect(effects.outcome.duplicates == 1 && effects.outcome.timersFired == 2)
        #expect(effects.messages.map(text) == [
            #"{"user_id":"u1","segment":"inactive_new_users","change":"enter","as_of":"2026-11-02T10:00:00Z","cause":"time"}"#])
        #expect(partition.members["u1"] == ["all", "inactive_new_users"])
    }

    @Test func invalidAndAlreadyCommittedRecords() {
        // Given offsets committed up to 1 on activity
        var partition = InMemoryPartition(processor)
        var records = Records()
        partition.commit([records.next(.signup("s1", "u1", at: Self.t0))])
        let redelivered = DecodedRecord(topic: "activity", partition: 0, offset: 0, key: nil, payload: [],
                                        decoded: .success(.session("x", "u1", at: Self.t0)))
        // When the batch holds a record below the stored offset and an invalid message
        let effects = partition.commit([redelivered, records.invalid("{oops", reason: "not JSON")])
        // Then the first is skipped by offset and the second is dead-lettered quoting its payload
        #expect(effects.outcome.alreadyApplied == 1 && effects.outcome.deadLettered == 1 && effects.outcome.tooOld == 0)
        #expect(text(effects.messages[0]).contains(#""error":"not JSON""#) && text(effects.messages[0]).contains(#""payload":"{oops""#))
        #expect(effects.outcome.nextOffsets == ["activity": 2])
    }
}
