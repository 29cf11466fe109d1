import Testing
@testable import SegmenterCore

/// Property, on the pure processor (no database): for random events, batchings, clock steps and
/// replays of earlier events, the incrementally kept memberships and KPI partials equal a
/// from-scratch evaluation of the distinct events, after every step; a replayed copy is a
/// duplicate inside the horizon and a dead letter beyond it, and never changes state.
@Suite struct BatchProcessorPropertyTests {
    static let catalog = SegmentCatalog(
        segments: [
            try! SegmentDefinition(name: "spenders", ruleText: "spend(3d) > 50"),
            try! SegmentDefinition(name: "inactive_new", ruleText: "hours_since_signup >= 24 and activities_since_signup = 0"),
            try! SegmentDefinition(name: "quiet", ruleText: "hours_since_last_activity > 30 or activities(2d) = 0"),
            try! SegmentDefinition(name: "fresh", ruleText: "days_since_signup between 1 and 3"),
        ],
        kpis: [
            try! KPIDefinition(name: "spend", kind: .sum, expressionText: "spend(3d)", segments: nil),
            try! KPIDefinition(name: "minutes", kind: .avg, expressionText: "active_minutes(2d)", segments: nil),
            try! KPIDefinition(name: "zero", kind: .share, expressionText: "activities_since_signup = 0", segments: nil),
        ])
    static let horizon = DedupeHorizon(longestWindowDays: catalog.longestWindow)  // 7 days

    static func event(_ n: Int, rng: inout SplitMix64, at ts: Instant) -> UserEvent {
        let user = "u\(rng.next() % 6)"
        switch rng.next() % 6 {
        case 0: return .signup("e\(n)", user, at: ts)
        case 1, 2: return .charge("e\(n)", user, at: ts, cents: Int64(rng.next() % 6000) - 1000)
        default: return .session("e\(n)", user, at: ts, seconds: Int64(rng.next() % 3000))
        }
    }

    @Test(arguments: Array(UInt64(1)...UInt64(20)))
    func incrementalEqualsRecomputationUnderReplays(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let calendar = DayCalendar(identifier: "America/New_York")!
        var partition = InMemoryPartition(BatchProcessor(catalog: Self.catalog, calendar: calendar, horizon: Self.horizon))
        var records = Records()
        var distinct: [UserEvent] = []
        var sent: [UserEvent] = []
        var clock = Instant(seconds: 1_790_000_000)
        for step in 0..<40 {
            var batch: [DecodedRecord] = []
            var expectTooOld = 0
            var expectDuplicates = 0
            var expectIdempotent = 0
            switch rng.next() % 5 {
            case 0:
                // A clock step with no events: only timers may move users.
                clock = clock.adding(seconds: Int64(rng.next() % (30 * 3600)))
            case 1 where !sent.isEmpty:
                // A replay of earlier events (an offset reset, a re-published snapshot).
                for _ in 0..<(1 + rng.next() % 10) {
                    let copy = sent[Int(rng.next() % UInt64(sent.count))]
                    // Past the horizon: dead-lettered, or applied again (harmlessly) if idempotent (SPEC §7).
                    if let watermark = partition.watermark.events, !Self.horizon.admits(copy.ts, at: watermark) {
                        if copy.body.isIdempotent { expectIdempotent += 1 } else { expectTooOld += 1 }
                    } else {
                        expectDuplicates += 1
                    }
                    batch.append(records.next(copy))
                }
            default:
                for _ in 0..<(1 + rng.next() % 8) {
                    // Mostly forward in time, sometimes a day or two late.
                    let late: Int64 = rng.next() % 5 == 0 ? 40 * 3600 : 0
                    let event = Self.event(sent.count, rng: &rng, at: clock.adding(seconds: Int64(rng.next() % (9 * 3600)) - late))
                    sent.append(event)
                    distinct.append(event)
                    clock = max(clock, event.ts)
                    batch.append(records.next(event))
                }
            }
            let before = (partition.profiles, partition.days, partition.partials)
            let outcome = partition.commit(batch, wallClock: clock).outcome
            let context = "seed \(seed) step \(step)"
            if expectTooOld + expectDuplicates + expectIdempotent > 0 {
                #expect(outcome.tooOld == expectTooOld && outcome.duplicates == expectDuplicates && outcome.idempotentBeyondHorizon == expectIdempotent,
                        "\(context): \(outcome)")
                #expect(partition.profiles == before.0 && partition.days == before.1, "\(context): a replay changed state")
            }
            verify(partition, events: distinct, now: clock, calendar: calendar, context: context)
        }
    }

    func verify(_ partition: InMemoryPartition, events: [UserEvent], now: Instant, calendar: DayCalendar, context: String) {
        let truth = FromScratch(events, catalog: Self.catalog, now: now, calendar: calendar)
        #expect(partition.profiles == truth.profiles, "\(context): profiles")
        #expect(partition.members == truth.members, "\(context): memberships")
        for key in Self.catalog.kpiKeys {
            let expected = Self.catalog.value(of: key, in: truth.partials.values)
            let incremental = Self.catalog.value(of: key, in: partition.partials.values)
            let same = switch (expected, incremental) {
            case (nil, nil): true
            case let (a?, b?): abs(a - b) <= 1e-6 * max(1, abs(a))
            default: false
            }
            #expect(same, "\(context): \(key) expected \(String(describing: expected)) got \(String(describing: incremental))")
        }
    }
}
