import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore
import SegmenterTestKit

/// SPEC §7: the published history — every (user, segment, change, as_of, cause) — is the one a
/// consumer applying one record at a time publishes, whatever the batching, across restarts.
/// Random inputs: sign-ups, silences, charges that cross a threshold and leave its window,
/// late and duplicate events, invalid messages, both topics consumed unevenly. Real SQLite.
@Suite struct HistoryTests {
    static let catalog = SegmentCatalog(
        segments: [
            try! SegmentDefinition(name: "spenders", ruleText: "spend(3d) > 50"),
            try! SegmentDefinition(name: "inactive_new", ruleText: "hours_since_signup >= 24 and activities_since_signup = 0"),
            try! SegmentDefinition(name: "quiet", ruleText: "hours_since_last_activity > 30"),
            try! SegmentDefinition(name: "fresh", ruleText: "days_since_signup between 1 and 3"),
            try! SegmentDefinition(name: "weekly", ruleText: "activities(7d) >= 3 or lifetime_spend > 100"),
            try! SegmentDefinition(name: "pro", ruleText: "attr.plan = 'pro'"),
        ],
        kpis: [try! KPIDefinition(name: "spend", kind: .sum, expressionText: "spend(3d)", segments: nil)])
    static let crossings: [(base: ReferenceConsumer.Base, hours: Double)] = [(.signup, 24), (.lastActivity, 30)]
    static let calendar = DayCalendar(identifier: "Europe/Berlin")!
    static let horizonDays: Int64 = 8
    static let start = Instant(seconds: 1_793_520_000)  // 2026-11-01

    struct Record {
        let topic: String
        let offset: Int64
        let payload: String
    }

    /// Each topic's records in its own order (mostly forward in time, some late, some copies,
    /// a few invalid), then merged in an uneven random interleaving: the arrival order.
    /// - Parameter metricEvents: also logins, checkouts, purchases and feature use with
    ///   properties (for the metrics' history, SPEC §4b).
    static func input(seed: UInt64, metricEvents: Bool = false) -> [Record] {
        var rng = SplitMix64(seed: seed)
        var streams: [String: [String]] = ["activity": [], "billing": []]
        let users = (0..<6).map { "u\($0)" }
        var clock = start
        var n = 0
        var sent: [(String, String)] = []
        for _ in 0..<(60 + Int(rng.next() % 60)) {
            // Silences of up to two days, so people go inactive, quiet, and spend leaves windows.
            clock = clock.adding(seconds: Int64(rng.next() % (rng.next() % 4 == 0 ? 48 * 3600 : 5 * 3600)))
            let late = rng.next() % 8 == 0 ? Int64(rng.next() % (40 * 3600)) : 0
            let ts = clock.adding(seconds: -late)
            let user = users[Int(rng.next() % UInt64(users.count))]
            n += 1
            let head = #""event_id":"e\#(n)","user_id":"\#(user)","ts":"\#(ts)""#
            let kind = rng.next() % (metricEvents ? 18 : 12)
            let (topic, payload): (String, String) = switch kind {
            case 12, 13: ("activity", #"{\#(head),"type":"login"}"#)
            case 14: ("activity", #"{\#(head),"type":"checkout_started","properties":{"plan":"\#(rng.next() % 2 == 0 ? "pro" : "team")"}}"#)
            case 15: ("activity", #"{\#(head),"type":"purchase"}"#)
            case 16: ("activity", #"{\#(head),"type":"feature_used","properties":{"feature":\#(["\"export\"", "\"share\"", "1", "true"][Int(rng.next() % 4)])}}"#)
            case 17: ("billing", #"{\#(head),"type":"charge","amount":\#(rng.next() % 60 + 1),"currency":"USD","properties":{"plan":"pro"}}"#)
            case 0, 1: ("activity", #"{\#(head),"type":"signup"}"#)
            case 2: ("activity", #"{\#(head),"type":"profile","attributes":{"plan":"\#(rng.next() % 2 == 0 ? "pro" : "free")"}}"#)
            case 3, 4, 5: ("billing", #"{\#(head),"type":"charge","amount":\#(rng.next() % 60 + 1),"currency":"USD"}"#)
            case 6: ("billing", #"{\#(head),"type":"refund","amount":\#(rng.next() % 20 + 1),"currency":"USD"}"#)
            case 7 where !sent.isEmpty: sent[Int(rng.next() % UInt64(sent.count))]  // a copy of an earlier message
            case 8 where rng.next() % 3 == 0: ("activity", #"{"event_id":"bad\#(n)","user_id":"\#(user)","ts":"nope","type":"session"}"#)
            default: ("activity", #"{\#(head),"type":"session","duration_s":\#(rng.next() % 900)}"#)
            }
            streams[topic]!.append(payload)
            sent.append((topic, payload))
        }
        // Uneven: long runs of one topic, sometimes all of one before the other.
        var records: [Record] = []
        var cursors = ["activity": 0, "billing": 0]
        let bias = rng.next() % 3
        while cursors["activity"]! < streams["activity"]!.count || cursors["billing"]! < streams["billing"]!.count {
            var topic = rng.next() % 2 == 0 ? "activity" : "billing"
            if bias == 1 { topic = cursors["activity"]! < streams["activity"]!.count ? "activity" : "billing" }
            if cursors[topic]! >= streams[topic]!.count { topic = topic == "activity" ? "billing" : "activity" }
            for _ in 0..<(1 + rng.next() % 6) where cursors[topic]! < streams[topic]!.count {
                records.append(Record(topic: topic, offset: Int64(cursors[topic]!), payload: streams[topic]![cursors[topic]!]))
                cursors[topic]! += 1
            }
        }
        return records
    }

    static func decoded(_ record: Record) -> DecodedRecord {
        let bytes = Array(record.payload.utf8)
        return DecodedRecord(topic: record.topic, partition: 0, offset: record.offset, key: nil, payload: bytes,
                             decoded: EventDecoder().decode(bytes, from: record.topic == "billing" ? .billing : .activity,
                                                            wallClock: Instant(seconds: 4_000_000_000)))
    }

    static func ends(_ records: [Record]) -> [String: Int64] {
        var ends = ["activity": Int64(0), "billing": 0]
        for record in records { ends[record.topic] = max(ends[record.topic]!, record.offset + 1) }
        return ends
    }

    static func reference(_ records: [Record], catalog: SegmentCatalog = catalog,
                          crossings: [(base: ReferenceConsumer.Base, hours: Double)] = crossings) -> ReferenceConsumer {
        var reference = ReferenceConsumer(catalog: catalog, calendar: calendar, horizonSeconds: horizonDays * 86_400,
                                          crossings: crossings, ends: ends(records))
        for record in records {
            let event = try? decoded(record).decoded.get()
            reference.consume(topic: record.topic, offset: record.offset, event: event)
        }
        return reference
    }

    /// The store fed `records` in batches of `size`, reopened (a restart) every `reopenEvery`
    /// batches; the membership changes its outbox holds, in order.
    static func published(_ records: [Record], batchSize size: Int, reopenEvery: Int?,
                          catalog: SegmentCatalog = catalog) throws -> [ReferenceConsumer.Change] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("history-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func open() throws -> PartitionStore {
            try PartitionStore(directory: directory, partition: 0, calendar: calendar, dedupeHorizonSeconds: horizonDays * 86_400,
                               segments: SegmentSetup(catalog: catalog, membershipTopic: "membership"))
        }
        var store = try open()
        var batches = 0
        for start in stride(from: 0, to: records.count, by: size) {
            let batch = records[start..<min(start + size, records.count)].map(decoded)
            _ = try store.commit(batch, receivedAt: Instant(seconds: 0), inputEnds: .known(ends(records)))
            batches += 1
            if let reopenEvery, batches % reopenEvery == 0 { store = try open() }
        }
        return try store.outbox(after: 0, limit: 1_000_000).filter { $0.topic == "membership" }.compactMap { ReferenceConsumer.Change(message: $0.value) }
    }

    @Test(arguments: Array(UInt64(1)...UInt64(30)))
    func theHistoryIsTheOneRecordAtATimeHistoryAtEveryBatchSize(seed: UInt64) throws {
        // Given a random input and the history a one-record-at-a-time consumer publishes for it
        let records = Self.input(seed: seed)
        let expected = Self.reference(records).published
        #expect(expected.contains { $0.cause == .time }, "seed \(seed): the input should move someone by time")
        for (size, reopen) in [(1, 5), (7, nil), (7, 3), (500, nil), (records.count, nil)] as [(Int, Int?)] {
            // When the store consumes it in batches of `size` (restarting every `reopen` batches)
            let actual = try Self.published(records, batchSize: size, reopenEvery: reopen)
            // Then every (user, segment) has exactly the reference's changes, instants and causes
            let want = expected.byUserAndSegment, got = actual.byUserAndSegment
            let wrong = Set(want.keys).union(got.keys).sorted().filter { want[$0] != got[$0] }
            #expect(wrong.isEmpty, """
                seed \(seed), batches of \(size)\(reopen.map { ", restarted every \($0)" } ?? ""): \(wrong.count) of \(want.count) pairs differ; \
                first: \(wrong.first.map { "\($0)\n  reference: \(want[$0] ?? [])\n  published: \(got[$0] ?? [])" } ?? "")
                """)
        }
    }
}
