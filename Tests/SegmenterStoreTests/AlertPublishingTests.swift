import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore
import SQLite

/// Alerts published through the KPI publisher's outbox: once per state change, baselines from
/// recorded end-of-day values, and no re-fire after a restart (issue 4).
@Suite struct AlertPublishingTests {
    let catalog = SegmentCatalog(segments: [try! SegmentDefinition(name: "new", ruleText: "days_since_signup <= 7")],
                                 kpis: [try! KPIDefinition(name: "minutes", kind: .avg, expressionText: "active_minutes(1d)", segments: nil)])
    let alerts = [
        AlertDefinition(name: "minutes_drop", segment: "all", kpi: "minutes", condition: .drop(percent: 50),
                        baseline: .init(count: 3), forSeconds: 3600, minMembers: 2, resolveAt: 20),
        AlertDefinition(name: "few_new", segment: "new", kpi: "members", condition: .threshold(.less, 1)),
    ]

    /// Partials for `members` users in `all` with average minutes `minutes`, and `new` members.
    func partials(members: Int64, minutes: Double, new: Int64) -> [KPIKey: KPIPartial] {
        [KPIKey(segment: "all", kpi: "members"): KPIPartial(counted: members, total: Double(members)),
         KPIKey(segment: "all", kpi: "minutes"): KPIPartial(counted: members, total: minutes * Double(members)),
         KPIKey(segment: "new", kpi: "members"): KPIPartial(counted: new, total: Double(new))]
    }

    /// The publisher writes to partition 0's outbox.
    func alertMessages(_ zero: PartitionStore) throws -> [[String: Any]] {
        try zero.outbox(after: 0, limit: 1000).filter { $0.topic == "alerts" }
            .map { try JSONSerialization.jsonObject(with: Data($0.value)) as! [String: Any] }
    }

    @Test func dropAgainstEndOfDayBaselineFiresAfterForAndSurvivesARestart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alerts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let day0 = Instant(seconds: 1_780_000_000 / 86_400 * 86_400)
        func at(day: Int64, hour: Int64) -> Instant { day0.adding(seconds: day * 86_400 + hour * 3600) }
        var zero = try PartitionStore(directory: directory, partition: 0, calendar: .utc)
        var publisher = try KPIPublisher(store: zero, topic: "kpis")
        let entry = DrillDownEntry(dimension: "signup_week", group: "2026-03-16", members: 4, value: 0, contribution: -8)
        func publish(_ now: Instant, minutes: Double, new: Int64 = 5) throws {
            try publisher.publish(catalog: catalog, partials: partials(members: 10, minutes: minutes, new: new), now: now,
                                  causes: [:], alerts: alerts, alertTopic: "alerts", drillDown: { _, _ in [entry] })
        }
        // Three normal days end at 20 minutes: the baseline.
        for day in 0..<3 { try publish(at(day: Int64(day), hour: 12), minutes: 20) }
        try publish(at(day: 3, hour: 1), minutes: 20)
        #expect(publisher.history[KPIKey(segment: "all", kpi: "minutes")]?.count == 3)
        // Minutes halve at 02:00: the condition holds, but `for: 1h` has not passed.
        try publish(at(day: 3, hour: 2), minutes: 9)
        try publish(at(day: 3, hour: 2).adding(seconds: 1800), minutes: 9)
        #expect(try alertMessages(zero).isEmpty)
        try publish(at(day: 3, hour: 3), minutes: 9)
        var messages = try alertMessages(zero)
        #expect(messages.count == 1)
        #expect(messages.first?["state"] as? String == "firing")
        #expect(messages.first?["baseline"] as? Double == 20)
        #expect(messages.first?["threshold"] as? Double == 10)
        let drill = messages.first?["drill_down"] as? [[String: Any]]
        #expect(drill?.first?["group"] as? String == "2026-03-16")
        #expect(try AlertStateReader(directory: directory).read()["minutes_drop"]?.drillDown?.contains("2026-03-16") == true)

        // A restart keeps the firing state: no second "firing".
        zero = try PartitionStore(directory: directory, partition: 0, calendar: .utc)
        publisher = try KPIPublisher(store: zero, topic: "kpis")
        try publish(at(day: 3, hour: 4), minutes: 9)
        // Hysteresis: 15 is above the firing level (10) but not back within 20% (16): still firing.
        try publish(at(day: 3, hour: 5), minutes: 15)
        #expect(try alertMessages(zero).count == 1)
        try publish(at(day: 3, hour: 6), minutes: 17)
        messages = try alertMessages(zero)
        #expect(messages.map { $0["state"] as? String } == ["firing", "resolved"])

        // A threshold on members: the new-users segment empties.
        try publish(at(day: 3, hour: 7), minutes: 17, new: 0)
        #expect(try alertMessages(zero).last?["alert"] as? String == "few_new")
    }

    /// State directories from before the publisher moved into partition 0 keep their chains.
    @Test func aLegacyPublisherFileIsAdoptedOnce() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("legacy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let legacy = try SQLiteConnection(path: directory.appendingPathComponent(KPIPublisher.legacyFileName).path)
        try legacy.execute("""
            CREATE TABLE kpi_published (segment TEXT NOT NULL, kpi TEXT NOT NULL, value_bits INTEGER, seq INTEGER NOT NULL,
                PRIMARY KEY (segment, kpi)) WITHOUT ROWID;
            CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL, created_at INTEGER NOT NULL);
            CREATE TABLE kpi_history (segment TEXT NOT NULL, kpi TEXT NOT NULL, day INTEGER NOT NULL, value_bits INTEGER NOT NULL,
                PRIMARY KEY (segment, kpi, day)) WITHOUT ROWID;
            CREATE TABLE alert_states (name TEXT PRIMARY KEY, state TEXT NOT NULL, pending_since INTEGER,
                value_bits INTEGER, baseline_bits INTEGER, drill_down TEXT) WITHOUT ROWID;
            CREATE TABLE publisher_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            INSERT INTO kpi_published VALUES ('all', 'members', \(Int64(bitPattern: Double(10).bitPattern)), 41);
            INSERT INTO outbox (topic, key, value, created_at) VALUES ('kpis', CAST('all' AS BLOB), CAST('{"seq":41}' AS BLOB), 0);
            INSERT INTO alert_states VALUES ('few_new', 'firing', NULL, NULL, NULL, NULL);
            """)
        let zero = try PartitionStore(directory: directory, partition: 0, calendar: .utc)
        let publisher = try KPIPublisher(store: zero, topic: "kpis")
        #expect(publisher.values[KPIKey(segment: "all", kpi: "members")] == 10)
        #expect(publisher.alertStatus["few_new"]?.state == .firing)
        #expect(try zero.outbox(after: 0, limit: 10).map { String(decoding: $0.value, as: UTF8.self) } == [#"{"seq":41}"#])
        #expect(zero.outboxHighWater > 0, "the relay must see the adopted row")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent(KPIPublisher.legacyFileName).path))
        // The next value continues the chain at 42.
        try publisher.publish(catalog: catalog, partials: partials(members: 11, minutes: 1, new: 1), now: Instant(seconds: 1_780_000_000), causes: [:])
        let messages = try zero.outbox(after: 0, limit: 10).map { String(decoding: $0.value, as: UTF8.self) }
        let members = messages.filter { $0.contains(#""segment":"all","kpi":"members""#) }
        #expect(members.count == 1 && members[0].contains(#""previous":10,"current":11"#) && members[0].contains(#""seq":42"#), "\(messages)")
    }

    /// A new leader whose copy of partition 0 is behind the topic continues each chain after the
    /// topic's latest message, and does not send its own stale messages for the same seqs.
    @Test func aNewLeaderContinuesAfterWhatTheTopicAlreadyHas() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let zero = try PartitionStore(directory: directory, partition: 0, calendar: .utc)
        let publisher = try KPIPublisher(store: zero, topic: "kpis")
        let now = Instant(seconds: 1_780_000_000)
        try publisher.publish(catalog: catalog, partials: partials(members: 10, minutes: 1, new: 1), now: now, causes: [:])
        let pendingBefore = try zero.outbox(after: 0, limit: 100).count

        // Another leader meanwhile took all/members to seq 5 (value 99); the topic was read to offset 17.
        let members = KPIKey(segment: "all", kpi: "members")
        let (advanced, dropped) = try publisher.continueChain(after: [members: .init(seq: 5, value: 99)], readTo: [0: 17])
        #expect(advanced == 1 && dropped == 1)
        #expect(try zero.outbox(after: 0, limit: 100).count == pendingBefore - 1)
        #expect(publisher.deliveredOffsets == [0: 17])

        try publisher.publish(catalog: catalog, partials: partials(members: 12, minutes: 1, new: 1), now: now, causes: [:])
        let sent = try zero.outbox(after: 0, limit: 100).map { String(decoding: $0.value, as: UTF8.self) }
            .filter { $0.contains(#""segment":"all","kpi":"members""#) }
        #expect(sent.count == 1 && sent[0].contains(#""previous":99,"current":12"#) && sent[0].contains(#""seq":6"#), "\(sent)")
    }
}
