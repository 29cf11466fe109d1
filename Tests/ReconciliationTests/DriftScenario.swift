import Foundation
@testable import SegmenterCore
@testable import SegmenterStore

/// A deterministic world with drift: `truth` is what the warehouse holds, `stream` what Kafka
/// delivered. The stream misses some activity and billing events, misses refunds issued in
/// the billing system, and has one user's sign-up three days late.
struct DriftScenario {
    static let dayCount = 20
    static let partitions = 4
    /// Midnight UTC, 20 days before `end`.
    static let base = Instant(seconds: 1_790_000_000 / 86_400 * 86_400)
    /// Two hours into the day after the last one: every day is closed (lag 1 h).
    static let end = base.adding(seconds: Int64(dayCount) * 86_400 + 7200)
    static let wrongSignupUser = "user-7"
    /// The days (from `base`) on which the stream misses events; the others agree.
    static let driftDays = [3, 8, 15]

    static let catalog = SegmentCatalog(
        segments: [
            try! SegmentDefinition(name: "spenders", ruleText: "spend(30d) > 200"),
            try! SegmentDefinition(name: "active", ruleText: "activities(7d) >= 5"),
            try! SegmentDefinition(name: "new_users", ruleText: "days_since_signup <= 10"),
            try! SegmentDefinition(name: "refunded", ruleText: "spend(7d) < 0"),
            try! SegmentDefinition(name: "engaged_since_signup", ruleText: "activities_since_signup >= 20"),
            try! SegmentDefinition(name: "whales", ruleText: "lifetime_spend > 1500"),
        ],
        kpis: [
            try! KPIDefinition(name: "revenue", kind: .sum, expressionText: "spend(30d)", segments: nil),
            try! KPIDefinition(name: "weekly_activities", kind: .avg, expressionText: "activities(7d)", segments: nil),
            try! KPIDefinition(name: "engaged", kind: .share, expressionText: "activities(3d) > 0", segments: nil),
            try! KPIDefinition(name: "minutes", kind: .sum, expressionText: "active_minutes(30d)", segments: nil),
        ])

    var truth: [UserEvent] = []
    var stream: [UserEvent] = []
    /// Events of the truth the stream did not deliver.
    var missed: [UserEvent] = []

    init(seed: UInt64, users: Int = 120) {
        var rng = SplitMix64(seed: seed)
        var n = 0
        func id() -> String { n += 1; return "e\(n)" }
        for u in 0..<users {
            let user = "user-\(u)"
            let signup = Self.base.adding(seconds: Int64(rng.next() % (5 * 86_400)))
            truth.append(UserEvent(eventID: id(), userID: user, ts: signup, body: .signup(attributes: [:])))
            for day in 0..<Self.dayCount where rng.next() % 3 != 0 {
                let dayStart = Self.base.adding(seconds: Int64(day) * 86_400)
                for _ in 0..<(1 + rng.next() % 3) {
                    // Whole and half seconds: both sides must agree to the microsecond.
                    let micros = Int64(rng.next() % 3600) * 500_000
                    truth.append(UserEvent(eventID: id(), userID: user, ts: dayStart.adding(seconds: Int64(rng.next() % 86_400)),
                                           body: .activity(type: "session", durationMicros: micros)))
                }
                if rng.next() % 4 == 0 {
                    truth.append(UserEvent(eventID: id(), userID: user, ts: dayStart.adding(seconds: Int64(rng.next() % 86_400)),
                                           body: .billing(cents: Int64(100 + rng.next() % 30_000))))
                }
            }
        }
        for (index, event) in truth.enumerated() {
            if event.body.countsInDay && index % 7 == 5 && Self.driftDays.contains(Int((event.ts.epochSeconds - Self.base.epochSeconds) / 86_400)) {
                missed.append(event)
                continue
            }
            if event.userID == Self.wrongSignupUser, case .signup = event.body {
                stream.append(UserEvent(eventID: event.eventID, userID: event.userID, ts: event.ts.adding(seconds: 3 * 86_400), body: event.body))
                continue
            }
            stream.append(event)
        }
        // Refunds issued in the billing system that never reached the billing topic.
        for k in 0..<6 {
            let refund = UserEvent(eventID: "wh-refund-\(k)", userID: "user-\(k * 11)", ts: Self.base.adding(seconds: Int64(Self.driftDays[k % 3]) * 86_400 + 4000),
                                   body: .billing(cents: -Int64(2_000 + k * 150)))
            truth.append(refund)
            missed.append(refund)
        }
        // A user only the warehouse knows (the stream lost all of their events).
        let ghost = UserEvent(eventID: "ghost-1", userID: "ghost", ts: Self.base.adding(seconds: 15 * 86_400 + 100), body: .billing(cents: 45_000))
        truth.append(ghost)
        missed.append(ghost)
    }

    /// Per user and UTC day sums of `events`, the way the warehouse tables hold them.
    static func daily(_ events: [UserEvent]) -> [String: [DayNumber: DayAggregate]] {
        var result: [String: [DayNumber: DayAggregate]] = [:]
        for event in events {
            let day = DayCalendar.utc.day(of: event.ts)
            switch event.body {
            case let .activity(_, micros): result[event.userID, default: [:]][day, default: DayAggregate()] += DayAggregate(activities: 1, activeMicros: micros)
            case let .billing(cents): result[event.userID, default: [:]][day, default: DayAggregate()] += DayAggregate(spendCents: cents)
            default: break
            }
        }
        return result
    }

    /// Earliest sign-up second per user.
    static func signups(_ events: [UserEvent]) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for event in events {
            if case .signup = event.body { result[event.userID] = min(result[event.userID] ?? .max, event.ts.epochSeconds) }
        }
        return result
    }

    /// Applies `events` to the stores of a state directory as one batch per partition, at `end`.
    static func apply(_ events: [UserEvent], to stores: [Int32: PartitionStore], offsets: inout [Int32: Int64]) throws -> BatchOutcome {
        var byPartition: [Int32: [DecodedRecord]] = [:]
        for event in events {
            let partition = Partitioner.murmur2Random.partition(of: event.userID, count: partitions)
            let offset = offsets[partition, default: 0]
            offsets[partition] = offset + 1
            byPartition[partition, default: []].append(DecodedRecord(
                topic: event.body.countsInDay && { if case .billing = event.body { true } else { false } }() ? "billing" : "activity",
                partition: partition, offset: offset, key: nil, payload: [], decoded: .success(event)))
        }
        var total = BatchOutcome()
        for (partition, records) in byPartition {
            let outcome = try stores[partition]!.commit(records, receivedAt: end, wallClock: end)
            total.applied += outcome.applied
            total.onReconciledDays += outcome.onReconciledDays
        }
        return total
    }
}
