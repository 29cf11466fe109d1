import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore
import SQLite

/// A state directory written by the release before state v2 (schema 3: one `seen_events` row
/// per event id) is upgraded in place on open: offsets, memberships, timers and the KPI chain
/// stay as they were, and the event ids it remembered still prove replays are duplicates.
///
/// `Fixtures/state-v3` was written by that release's `segmenter run` (2 partitions, the
/// segments of its `segmenter.yaml`) from `generate --users 120 --events 1500 --days 10
/// --start 2026-11-01 --duplicate-rate 0.02 --invalid-rate 0.01 --seed 3`, whose log is `produced.jsonl.gz`.
@Suite struct MigrationTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/state-v3")
    static let catalog = SegmentCatalog(
        segments: [try! SegmentDefinition(name: "spenders", ruleText: "spend(7d) > 50"),
                   try! SegmentDefinition(name: "inactive_new_users", ruleText: "hours_since_signup >= 24 and activities_since_signup = 0")],
        kpis: [try! KPIDefinition(name: "spend_7d", kind: .sum, expressionText: "spend(7d)", segments: nil),
               try! KPIDefinition(name: "zero_share", kind: .share, expressionText: "activities_since_signup = 0", segments: nil)])

    /// Rows of `sql` as text, to compare a table before and after the upgrade.
    func rows(_ db: SQLiteConnection, _ sql: String) throws -> [String] {
        let statement = try db.prepare(sql)
        var result: [String] = []
        while try statement.step() {
            result.append((0..<statement.columnCount).map { statement.string($0) ?? "null" }.joined(separator: "|"))
        }
        return result
    }

    /// The valid messages of the fixture's input, by the partition whose state holds their user.
    func producedEvents(partitionOf: [String: Int32]) throws -> [Int32: [(topic: String, payload: String)]] {
        let gz = Self.fixture.appendingPathComponent("produced.jsonl.gz").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-dc", gz]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var byPartition: [Int32: [(topic: String, payload: String)]] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            guard object["valid"] as! Bool else { continue }
            let partition = try #require(partitionOf[object["key"] as! String])
            byPartition[partition, default: []].append((object["topic"] as! String, object["payload"] as! String))
        }
        return byPartition
    }

    @Test func aStateDirectoryOfThePreviousReleaseIsUpgradedInPlaceAndStillRecognisesReplays() throws {
        // Given the previous release's state directory
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("migrate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for partition in [0, 1] {
            let name = PartitionStore.fileName(partition: Int32(partition))
            try FileManager.default.copyItem(at: Self.fixture.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        let kept = ["SELECT topic, partition, next_offset FROM offsets ORDER BY 1, 2",
                    "SELECT user_id, segment, hex(contributions) FROM memberships ORDER BY 1, 2",
                    "SELECT user_id, due FROM timers ORDER BY 1",
                    // Every column the old release had (schema 5 adds reconciliation's `bucket`).
                    "SELECT user_id, signup_at, last_activity_at, lifetime_spend_cents, lifetime_activities, lifetime_active_us, "
                        + "activity_before_signup, attributes, accounts FROM users ORDER BY user_id",
                    "SELECT user_id, day, spend_cents, activities, active_us FROM user_days WHERE spend_cents <> 0 OR activities <> 0 OR active_us <> 0 ORDER BY 1, 2",
                    "SELECT * FROM kpi_partials ORDER BY 1, 2"]
        let chain = "SELECT * FROM kpi_published ORDER BY 1, 2"
        var before: [Int32: [[String]]] = [:]
        var remembered: [Int32: Int] = [:]
        var partitionOf: [String: Int32] = [:]
        for partition: Int32 in [0, 1] {
            let db = try SQLiteConnection(path: directory.appendingPathComponent(PartitionStore.fileName(partition: partition)).path)
            #expect(try db.userVersion == 3)
            before[partition] = try (kept + (partition == 0 ? [chain] : [])).map { try rows(db, $0) }
            remembered[partition] = Int(try rows(db, "SELECT count(*) FROM seen_events")[0])!
            for user in try rows(db, "SELECT user_id FROM users") { partitionOf[user] = partition }
        }
        let decoder = EventDecoder(currency: "USD", fxRates: ["EUR": ExchangeRate("1.08")!])
        for (partition, messages) in try producedEvents(partitionOf: partitionOf) {
            // When this release opens it
            let store = try PartitionStore(directory: directory, partition: partition, calendar: .utc, segments: SegmentSetup(catalog: Self.catalog))
            // Then the schema is current, the per-event table is gone, and everything else is as it was
            #expect(try store.db.userVersion == Schema.migrations.count)
            #expect(try rows(store.db, "SELECT count(*) FROM sqlite_master WHERE name = 'seen_events'") == ["0"])
            #expect(try (kept + (partition == 0 ? [chain] : [])).map { try rows(store.db, $0) } == before[partition]!)
            #expect(try rows(store.db, "SELECT sum(length(evidence)) / 8 FROM user_days") == ["\(remembered[partition]!)"])
            // and the segment definitions are the same, so nothing is re-evaluated
            #expect(try store.applyDefinitionChanges() == 0)

            // When the whole input is delivered again at new offsets (a replay)
            let stored = try store.storedOffsets()
            var next = stored
            let records = messages.map { message in
                defer { next[message.topic, default: 0] += 1 }
                return DecodedRecord(topic: message.topic, partition: partition, offset: next[message.topic] ?? 0, key: nil,
                                     payload: Array(message.payload.utf8),
                                     decoded: decoder.decode(Array(message.payload.utf8), from: InputKind(rawValue: message.topic)!,
                                                             wallClock: Instant(seconds: 4_000_000_000)))
            }
            let outboxBefore = try store.outboxDepth()
            let outcome = try store.commit(records, receivedAt: Instant(seconds: 0))
            // Then no event applies again: each is a duplicate, or older than what the old release
            // remembered (dead-lettered, or for sign-up, profile and account events applied again, which changes nothing)
            #expect(outcome.applied == outcome.idempotentBeyondHorizon, "partition \(partition): \(outcome)")
            #expect(outcome.duplicates + outcome.tooOld + outcome.idempotentBeyondHorizon == records.count)
            #expect(outcome.duplicates >= remembered[partition]! / 2, "the remembered ids must still count: \(outcome)")
            #expect(try store.outboxDepth() - outboxBefore == outcome.tooOld, "only dead letters are published")
            #expect(try rows(store.db, kept[3]) == before[partition]![3], "users unchanged")
            // and a genuinely new event still applies
            let fresh = #"{"event_id":"after-upgrade","user_id":"u-new","type":"session","ts":"2026-11-10T20:00:00Z"}"#
            let applied = try store.commit([DecodedRecord(topic: "activity", partition: partition, offset: next["activity"] ?? 0, key: nil, payload: [],
                                                          decoded: decoder.decode(Array(fresh.utf8), from: .activity, wallClock: Instant(seconds: 4_000_000_000)))],
                                           receivedAt: Instant(seconds: 0))
            #expect(applied.applied == 1)
        }
    }
}
