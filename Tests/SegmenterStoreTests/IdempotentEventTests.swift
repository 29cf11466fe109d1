import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore
import SegmenterTestKit

/// SPEC §7: sign-up, profile and account events apply at any age, since applying one again
/// changes nothing; an activity or a charge that old is still dead-lettered (it could count twice),
/// and an old event never counts in a metric (issue 25, item 8: a CRM sync three weeks late was lost).
@Suite struct IdempotentEventTests {
    static let metrics = MetricCatalog([try! MetricDefinition(name: "signups", source: .count(filter: "type = 'signup'"))])
    static let catalog = SegmentCatalog(
        segments: [try! SegmentDefinition(name: "pro", ruleText: "attr.plan = 'pro'"),
                   try! SegmentDefinition(name: "twice", ruleText: "signups(lifetime) >= 2", metrics: metrics)],
        metrics: metrics)

    func record(_ topic: String, _ offset: Int64, _ json: String) -> DecodedRecord {
        let bytes = Array(json.utf8)
        return DecodedRecord(topic: topic, partition: 0, offset: offset, key: nil, payload: bytes,
                             decoded: EventDecoder().decode(bytes, from: topic == "billing" ? .billing : .activity, wallClock: Instant(seconds: 4_000_000_000)))
    }

    @Test func identityEventsApplyAtAnyAgeAndNothingCountsTwice() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("idempotent-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try PartitionStore(directory: directory, partition: 0, calendar: .utc, dedupeHorizonSeconds: 7 * 86_400,
                                       segments: SegmentSetup(catalog: Self.catalog, membershipTopic: "membership"))
        // Given a user who signed up on Nov 1, and the stream now on Dec 1 (the horizon is 7 days)
        _ = try store.commit([
            record("activity", 0, #"{"event_id":"s1","user_id":"u","type":"signup","ts":"2026-11-01T10:00:00Z"}"#),
            record("activity", 1, #"{"event_id":"t","user_id":"other","type":"session","ts":"2026-12-01T00:00:00Z"}"#),
            record("billing", 0, #"{"event_id":"b","user_id":"other","type":"charge","amount":1,"currency":"USD","ts":"2026-12-01T00:00:00Z"}"#),
        ], receivedAt: Instant(seconds: 0))
        // When a profile change of Nov 10 arrives three weeks late, with an activity and a charge
        // that old, and the Nov 1 sign-up again (a replay)
        let outcome = try store.commit([
            record("activity", 2, #"{"event_id":"p1","user_id":"u","type":"profile","ts":"2026-11-10T00:00:00Z","attributes":{"plan":"pro"}}"#),
            record("activity", 3, #"{"event_id":"a1","user_id":"u","type":"session","ts":"2026-11-10T00:00:00Z"}"#),
            record("billing", 1, #"{"event_id":"c1","user_id":"u","type":"charge","amount":5,"currency":"USD","ts":"2026-11-10T00:00:00Z"}"#),
            record("activity", 4, #"{"event_id":"s1","user_id":"u","type":"signup","ts":"2026-11-01T10:00:00Z"}"#),
        ], receivedAt: Instant(seconds: 0))
        // Then the profile change and the repeated sign-up are applied, the activity and the charge dead-lettered
        #expect(outcome.idempotentBeyondHorizon == 2 && outcome.tooOld == 2 && outcome.deadLettered == 2, "\(outcome)")
        let profile = try #require(try store.profile(of: "u"))
        #expect(profile.attributes["plan"]?.value == .string("pro"))
        #expect(profile.lifetimeActivities == 0 && profile.lifetimeSpendCents == 0)
        // and u entered `pro` by that event, at the pair's clock (a late event), but the old
        // sign-up did not count again in a metric: u is not in `twice`
        let changes = try store.outbox(after: 0, limit: 1000).filter { $0.topic == "membership" }.compactMap { MembershipChange(message: $0.value) }
        #expect(changes.filter { $0.userID == "u" }.map(\.description) == ["u/pro enter at 2026-12-01T00:00:00Z by event"], "\(changes)")
    }
}
