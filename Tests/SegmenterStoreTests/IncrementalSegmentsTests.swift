import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore

/// Property: for random event sequences, batchings and clock steps, the incrementally kept
/// membership and KPIs equal a from-scratch recomputation over the same events, after every step.
@Suite struct IncrementalSegmentsTests {
    static let catalog = SegmentCatalog(
        segments: [
            try! SegmentDefinition(name: "spenders", ruleText: "spend(3d) > 50"),
            try! SegmentDefinition(name: "inactive_new", ruleText: "hours_since_signup >= 24 and activities_since_signup = 0"),
            try! SegmentDefinition(name: "veterans", ruleText: "days_since_signup >= 2 and attr.plan in ('pro', 'team')"),
            try! SegmentDefinition(name: "quiet", ruleText: "hours_since_last_activity > 30 or activities(2d) = 0"),
            try! SegmentDefinition(name: "multi", ruleText: "accounts >= 2"),
            try! SegmentDefinition(name: "fresh", ruleText: "days_since_signup between 1 and 3 or days_since_signup = 5"),
        ],
        kpis: [
            try! KPIDefinition(name: "spend", kind: .sum, expressionText: "spend(3d)", segments: nil),
            try! KPIDefinition(name: "minutes", kind: .avg, expressionText: "active_minutes(2d)", segments: nil),
            try! KPIDefinition(name: "zero", kind: .share, expressionText: "activities_since_signup = 0", segments: nil),
            try! KPIDefinition(name: "accounts", kind: .avg, expressionText: "accounts", segments: ["all", "spenders"]),
        ])

    static let start = Instant(seconds: 1_780_000_000)

    /// A random event; about a third are billing, a few are signups, profiles and accounts.
    static func randomEvent(_ n: Int, rng: inout SplitMix64, at ts: Instant) -> (InputKind, String) {
        let user = "u\(rng.next() % 5)"
        let head = #""event_id":"e\#(n)","user_id":"\#(user)","ts":"\#(ts)""#
        switch rng.next() % 10 {
        case 0: return (.activity, #"{\#(head),"type":"signup"}"#)
        case 1: return (.activity, #"{\#(head),"type":"profile","attributes":{"plan":"\#(["free", "pro", "team"][Int(rng.next() % 3)])"}}"#)
        case 2: return (.activity, #"{\#(head),"type":"account_\#(rng.next() % 2 == 0 ? "opened" : "closed")","account_id":"a\#(rng.next() % 3)"}"#)
        case 3, 4: return (.billing, #"{\#(head),"type":"charge","amount":\#(rng.next() % 4000 + 1),"currency":"USD"}"#)
        case 5: return (.billing, #"{\#(head),"type":"refund","amount":\#(rng.next() % 900 + 1),"currency":"USD"}"#)
        default: return (.activity, #"{\#(head),"type":"session","duration_s":\#(rng.next() % 3000)}"#)
        }
    }

    @Test(arguments: Array(UInt64(1)...UInt64(25)))
    func incrementalEqualsRecomputation(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("prop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let calendar = DayCalendar(identifier: "Europe/Berlin")!
        let store = try PartitionStore(directory: directory, partition: 0, calendar: calendar,
                                       segments: SegmentSetup(catalog: Self.catalog))
        let decoder = EventDecoder()
        var applied: [UserEvent] = []
        var offset: Int64 = 0
        var clock = Self.start
        var n = 0
        for step in 0..<30 {
            if rng.next() % 4 == 0 {
                // A clock step with no events: only timers may move users.
                clock = clock.adding(seconds: Int64(rng.next() % (40 * 3600)))
                _ = try store.advanceClock(to: clock)
            } else {
                var records: [DecodedRecord] = []
                for _ in 0..<(1 + rng.next() % 8) {
                    // Mostly forward in time, sometimes late (up to 2 days back).
                    let ts = clock.adding(seconds: Int64(rng.next() % (8 * 3600)) - (rng.next() % 5 == 0 ? 48 * 3600 : 0))
                    let (kind, payload) = Self.randomEvent(n, rng: &rng, at: ts)
                    n += 1
                    let decoded = decoder.decode(Array(payload.utf8), from: kind, wallClock: Instant(seconds: 4_000_000_000))
                    if case let .success(event) = decoded {
                        applied.append(event)
                        clock = max(clock, event.ts)  // the event clock: the greatest ts seen
                    }
                    records.append(DecodedRecord(topic: kind.rawValue, partition: 0, offset: offset, key: nil,
                                                 payload: Array(payload.utf8), decoded: decoded))
                    offset += 1
                }
                _ = try store.commit(records, receivedAt: Instant(seconds: 0))
            }
            try verify(store: store, directory: directory, events: applied, now: clock, calendar: calendar,
                       context: "seed \(seed) step \(step)")
        }
    }

    func verify(store: PartitionStore, directory: URL, events: [UserEvent], now: Instant, calendar: DayCalendar,
                context: String) throws {
        let truth = FromScratch(events, catalog: Self.catalog, now: now, calendar: calendar)
        let expectedMembers = truth.members
        let expectedPartials = truth.partials
        let reader = try StateReader(directory: directory)
        #expect(try reader.allMemberships() == expectedMembers, "\(context): membership")
        let stored = try reader.kpiPartials()
        for key in Self.catalog.kpiKeys {
            let expected = Self.catalog.value(of: key, in: expectedPartials.values)
            let incremental = Self.catalog.value(of: key, in: store.partials.values)
            let durable = Self.catalog.value(of: key, in: stored)
            #expect(close(expected, incremental), "\(context): \(key) expected \(String(describing: expected)) got \(String(describing: incremental))")
            #expect(close(expected, durable), "\(context): \(key) stored")
        }
    }

    func close(_ a: Double?, _ b: Double?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case let (x?, y?): return abs(x - y) <= 1e-6 * max(1, abs(x))
        default: return false
        }
    }
}

/// Changing a rule and restarting re-evaluates everyone once and publishes the differences
/// with cause `config`; a second start with the same rules publishes nothing.
@Suite struct DefinitionChangeTests {
    @Test func aChangedRuleReevaluatesEveryoneOnceWithCauseConfig() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func open(_ rule: String) throws -> PartitionStore {
            let catalog = SegmentCatalog(segments: [try SegmentDefinition(name: "payers", ruleText: rule)],
                                         kpis: [try KPIDefinition(name: "spend", kind: .sum, expressionText: "lifetime_spend", segments: nil)])
            return try PartitionStore(directory: directory, partition: 0, calendar: .utc, segments: SegmentSetup(catalog: catalog))
        }
        let decoder = EventDecoder()
        let records = [(100, "u1"), (700, "u2"), (2000, "u3")].enumerated().map { index, item in
            let payload = #"{"event_id":"c\#(index)","user_id":"\#(item.1)","type":"charge","ts":"2026-03-01T10:00:00Z","amount":\#(item.0),"currency":"USD"}"#
            return DecodedRecord(topic: "billing", partition: 0, offset: Int64(index), key: nil, payload: Array(payload.utf8),
                                 decoded: decoder.decode(Array(payload.utf8), from: .billing, wallClock: Instant(seconds: 4_000_000_000)))
        }
        do {
            let store = try open("lifetime_spend > 500")
            _ = try store.applyDefinitionChanges()
            _ = try store.commit(records, receivedAt: Instant(seconds: 0))
            try store.outboxDatabase.execute("DELETE FROM outbox")
        }
        let changed = try open("lifetime_spend > 1000")
        #expect(try changed.applyDefinitionChanges() == 1)  // u2 exits
        let messages = try changed.outbox(after: 0, limit: 10).map { String(decoding: $0.value, as: UTF8.self) }
        #expect(messages.count == 1)
        #expect(messages.first?.contains(#""user_id":"u2","segment":"payers","change":"exit""#) == true)
        #expect(messages.first?.contains(#""cause":"config""#) == true)
        #expect(SegmentCatalog(segments: [try SegmentDefinition(name: "payers", ruleText: "lifetime_spend > 1000")],
                               kpis: [try KPIDefinition(name: "spend", kind: .sum, expressionText: "lifetime_spend", segments: nil)])
            .value(of: KPIKey(segment: "payers", kpi: "spend"), in: changed.partials.values) == 2000)
        #expect(try open("lifetime_spend > 1000").applyDefinitionChanges() == 0)
    }
}
