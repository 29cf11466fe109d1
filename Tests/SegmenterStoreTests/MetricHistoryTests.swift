import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore
import SegmenterTestKit

/// SPEC §4b with §7: segments on metrics publish the one-record-at-a-time history at every
/// batch size and across restarts — windows moving on, abandoned checkouts counting by time,
/// late purchases un-abandoning them, distinct values across days. Real SQLite.
@Suite struct MetricHistoryTests {
    static let metrics = MetricCatalog([
        try! MetricDefinition(name: "logins", source: .count(filter: "type = 'login'")),
        try! MetricDefinition(name: "pro_revenue", source: .sum(value: "amount", filter: "prop.plan = 'pro'")),
        try! MetricDefinition(name: "features_used", source: .countDistinct(value: "prop.feature", filter: "type = 'feature_used'")),
        try! MetricDefinition(name: "paid_checkouts", source: .sequence(first: "type = 'checkout_started'", then: "type = 'purchase'",
                                                                         withinNanos: 6 * Instant.nanosPerHour, abandoned: false)),
        try! MetricDefinition(name: "abandoned_checkouts", source: .sequence(first: "type = 'checkout_started'", then: "type = 'purchase'",
                                                                              withinNanos: 6 * Instant.nanosPerHour, abandoned: true)),
    ])
    static let catalog = SegmentCatalog(
        segments: [
            try! SegmentDefinition(name: "loggers", ruleText: "logins(2d) >= 2", metrics: metrics),
            try! SegmentDefinition(name: "pro_payers", ruleText: "pro_revenue(3d) > 40", metrics: metrics),
            try! SegmentDefinition(name: "explorers", ruleText: "features_used(3d) >= 2", metrics: metrics),
            try! SegmentDefinition(name: "abandoners", ruleText: "abandoned_checkouts(1d) >= 1", metrics: metrics),
            try! SegmentDefinition(name: "buyers", ruleText: "paid_checkouts(lifetime) >= 1 and hours_since_last(logins) < 20", metrics: metrics),
        ],
        kpis: [try! KPIDefinition(name: "abandoned", kind: .sum, expressionText: "abandoned_checkouts(7d)", segments: nil, metrics: metrics)],
        metrics: metrics)
    static let crossings: [(base: ReferenceConsumer.Base, hours: Double)] = [(.latestMatching(try! RuleParser.parseFilter("type = 'login'")), 20)]

    @Test(arguments: Array(UInt64(1)...UInt64(24)))
    func theMetricHistoryIsTheOneRecordAtATimeHistoryAtEveryBatchSize(seed: UInt64) throws {
        // Given a random input with metric events and what a one-record-at-a-time consumer publishes
        let records = HistoryTests.input(seed: seed, metricEvents: true)
        let expected = HistoryTests.reference(records, catalog: Self.catalog, crossings: Self.crossings).published
        #expect(expected.contains { $0.cause == .time }, "seed \(seed): the input should move someone by time")
        for (size, reopen) in [(1, 5), (7, nil), (7, 3), (500, nil)] as [(Int, Int?)] {
            // When the store consumes it in batches of `size` (restarting every `reopen` batches)
            let actual = try HistoryTests.published(records, batchSize: size, reopenEvery: reopen, catalog: Self.catalog)
            // Then every (user, segment) has exactly the reference's changes, instants and causes
            let want = expected.byUserAndSegment, got = actual.byUserAndSegment
            let wrong = Set(want.keys).union(got.keys).sorted().filter { want[$0] != got[$0] }
            #expect(wrong.isEmpty, """
                seed \(seed), batches of \(size)\(reopen.map { ", restarted every \($0)" } ?? ""): \(wrong.count) of \(want.count) pairs differ; \
                first: \(wrong.first.map { "\($0)\n  reference: \(want[$0] ?? [])\n  published: \(got[$0] ?? [])" } ?? "")
                """)
        }
    }

    @Test func anAbandonedCheckoutEntersByTimeJustAfterItsWindowAndALatePurchaseTakesItOut() throws {
        // Given one checkout, then other users' events that move the pair's clock on past its window
        let head = { (id: String, user: String, ts: String) in #""event_id":"\#(id)","user_id":"\#(user)","ts":"\#(ts)""# }
        var records: [HistoryTests.Record] = []
        func add(_ topic: String, _ payload: String) {
            records.append(HistoryTests.Record(topic: topic, offset: Int64(records.filter { $0.topic == topic }.count), payload: payload))
        }
        add("activity", #"{\#(head("c1", "ann", "2026-11-01T10:00:00Z")),"type":"checkout_started"}"#)
        add("billing", #"{\#(head("b1", "bob", "2026-11-01T17:00:00Z")),"type":"charge","amount":1,"currency":"USD"}"#)
        add("activity", #"{\#(head("s1", "bob", "2026-11-01T17:00:00Z")),"type":"session"}"#)
        // A purchase 5 h after the checkout, arriving after the clock passed the window: late.
        add("activity", #"{\#(head("p1", "ann", "2026-11-01T15:00:00Z")),"type":"purchase"}"#)
        let published = try HistoryTests.published(records, batchSize: 1, reopenEvery: nil, catalog: Self.catalog)
        let ann = published.filter { $0.userID == "ann" && $0.segment == "abandoners" }
        // Then ann entered `abandoners` by time the instant after 16:00, and the late purchase took her out
        let enteredAt = try RFC3339.parse("2026-11-01T16:00:00.000000001Z").get()
        #expect(ann.map(\.entered) == [true, false], "\(ann)")
        #expect(ann.first?.asOf == enteredAt && ann.first?.cause == .time, "\(ann)")
        #expect(ann.last?.cause == .event, "\(ann)")
    }
}
