import Testing
@testable import SegmenterCore

/// The dedupe horizon's rule (SPEC §7): which events may still be applied at a watermark.
@Suite struct DedupeHorizonTests {
    static let watermark = Instant(seconds: 1_795_000_000)
    static let day: Int64 = 86_400 * Instant.nanosPerSecond

    @Test(arguments: [
        // (event time relative to the watermark in ns, admitted)
        (-8 * day, true),          // exactly at the edge: admitted
        (-8 * day - 1, false),     // one nanosecond past it
        (-8 * day + 1, true),
        (-30 * day, false),
        (0, true),
        (3_600 * Instant.nanosPerSecond, true),  // ahead of the watermark
    ])
    func edges(offset: Int64, admitted: Bool) {
        let horizon = DedupeHorizon(seconds: 8 * 86_400)
        #expect(horizon.admits(Instant(nanoseconds: Self.watermark.nanoseconds + offset), at: Self.watermark) == admitted)
    }

    @Test func withoutAWatermarkEverythingIsAdmitted() {
        #expect(DedupeHorizon(seconds: 86_400).admits(Instant(seconds: 0), at: nil))
    }

    @Test(arguments: [(1, 7), (3, 7), (6, 7), (7, 8), (30, 31), (90, 91)])
    func theDefaultCoversTheLongestWindowPlusADay(window: Int, days: Int64) {
        #expect(DedupeHorizon(longestWindowDays: window).seconds == days * 86_400)
    }

    @Test func aLateFirstCopyInsideTheHorizonCountsOnce() {
        // Given a partition whose event time is at the watermark
        let processor = BatchProcessor(catalog: SegmentCatalog(), calendar: .utc, horizon: DedupeHorizon(seconds: 8 * 86_400))
        var partition = InMemoryPartition(processor)
        var records = Records()
        partition.commit([records.next(.session("now", "u1", at: Self.watermark))])
        // When an event 7 days late arrives for the first time, twice in its batch, then again later
        let late = UserEvent.charge("late", "u1", at: Self.watermark.adding(seconds: -7 * 86_400), cents: 500)
        let first = partition.commit([records.next(late), records.next(late)])
        let again = partition.commit([records.next(late)])
        // Then it counts once
        #expect(first.outcome.applied == 1 && first.outcome.duplicates == 1)
        #expect(again.outcome.applied == 0 && again.outcome.duplicates == 1 && again.outcome.tooOld == 0)
        #expect(partition.profiles["u1"]?.lifetimeSpendCents == 500)
    }

    @Test(arguments: [true, false])
    func aRecordIsJudgedByTheWatermarkWhenItArrivedHoweverTheBatchIsCut(oneBatch: Bool) {
        // Given a partition whose activity is at the watermark
        let processor = BatchProcessor(catalog: SegmentCatalog(), calendar: .utc, horizon: DedupeHorizon(seconds: 8 * 86_400))
        var partition = InMemoryPartition(processor)
        var records = Records()
        partition.commit([records.next(.session("now", "u1", at: Self.watermark))])
        // When an event 20 days later arrives and then one 5 days before the watermark (25 behind the later one)
        let later = records.next(.session("later", "u1", at: Self.watermark.adding(seconds: 20 * 86_400)))
        let earlier = records.next(.session("earlier", "u2", at: Self.watermark.adding(seconds: -5 * 86_400)))
        let ends = BatchProcessor.InputEnds.known(["activity": 3, "billing": 0])
        var outcome = BatchOutcome()
        for batch in oneBatch ? [[later, earlier]] : [[later], [earlier]] { outcome.add(partition.commit(batch, inputEnds: ends).outcome) }
        // Then the later one applies and the earlier one is older than the horizon of the watermark
        // it arrived at: the same verdict in one batch as in two
        #expect(outcome.applied == 1 && outcome.tooOld == 1)
        #expect(partition.eventTimes["activity"] == Self.watermark.adding(seconds: 20 * 86_400))
    }

    @Test func anUpgradedStatesEvidenceFloorRejectsWhatItCannotProve() {
        let processor = BatchProcessor(catalog: SegmentCatalog(), calendar: .utc, horizon: DedupeHorizon(seconds: 31 * 86_400))
        var input = BatchProcessor.Input(records: [], receivedAt: Self.watermark)
        input.watermark = PairWatermark(events: Self.watermark)
        input.evidenceFloor = Self.watermark.adding(seconds: -7 * 86_400)
        var records = Records()
        input.records = [records.next(.session("a", "u1", at: Self.watermark.adding(seconds: -8 * 86_400))),
                         records.next(.session("b", "u1", at: Self.watermark.adding(seconds: -6 * 86_400)))]
        input.users["u1"] = UserSlice(profile: UserProfile())
        let effects = processor.process(&input, partials: KPIPartials())
        #expect(effects.outcome.tooOld == 1 && effects.outcome.applied == 1)
        #expect(String(decoding: effects.messages[0].value, as: UTF8.self).contains("older than the dedupe horizon"))
    }
}
