import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore

/// Real SQLite files in a temporary directory.
@Suite struct PartitionStoreTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func record(_ offset: Int64, topic: String = "activity", _ payload: String) -> DecodedRecord {
        let decoder = EventDecoder(currency: "USD")
        let kind: InputKind = topic == "billing" ? .billing : .activity
        let bytes = Array(payload.utf8)
        return DecodedRecord(topic: topic, partition: 0, offset: offset, key: nil, payload: bytes,
                             decoded: decoder.decode(bytes, from: kind, wallClock: Instant(seconds: 4_000_000_000)))
    }

    func activity(_ id: String, user: String = "u1", ts: String = "2026-03-01T10:00:00Z") -> String {
        #"{"event_id":"\#(id)","user_id":"\#(user)","type":"session","ts":"\#(ts)","duration_s":60}"#
    }

    func charge(_ id: String, user: String = "u1", cents: Int) -> String {
        #"{"event_id":"\#(id)","user_id":"\#(user)","type":"charge","ts":"2026-03-01T11:00:00Z","amount":\#(Money.format(cents: Int64(cents))),"currency":"USD"}"#
    }

    func openStore() throws -> PartitionStore {
        try PartitionStore(directory: directory, partition: 0, calendar: .utc)
    }

    /// A snapshot installed elsewhere is the same state with the same offsets, and replaying the
    /// input after it (as a restore does) applies only what the snapshot had not seen.
    @Test func aSnapshotInstalledElsewhereResumesExactlyWhereItWasTaken() throws {
        let store = try openStore()
        _ = try store.commit([record(0, activity("e1")), record(1, topic: "billing", charge("c1", cents: 700))],
                             receivedAt: Instant(seconds: 0))
        let snapshot = directory.appendingPathComponent("copy.snapshot")
        try store.writeSnapshot(to: snapshot)
        // A commit after the snapshot: not in it.
        _ = try store.commit([record(2, activity("e2"))], receivedAt: Instant(seconds: 0))

        let elsewhere = directory.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        try PartitionStore.install(snapshot: snapshot, directory: elsewhere, partition: 0)
        #expect(try PartitionStore.storedOffsets(directory: elsewhere, partition: 0) == ["activity": 1, "billing": 2])
        let restored = try PartitionStore(directory: elsewhere, partition: 0, calendar: .utc)
        #expect(try restored.profile(of: "u1")?.lifetimeActivities == 1)
        #expect(try restored.profile(of: "u1")?.lifetimeSpendCents == 700)
        // The input is consumed again from the stored offsets: e2 (offset 2) counts, e1 (a redelivery) does not.
        let outcome = try restored.commit([record(1, activity("e1")), record(2, activity("e2"))], receivedAt: Instant(seconds: 0))
        #expect(outcome.applied == 1)
        #expect(try restored.profile(of: "u1")?.lifetimeActivities == 2)
        #expect(try PartitionStore.storedOffsets(directory: directory, partition: 7) == [:])
    }

    @Test func anInterruptedBatchLeavesNoPartialState() throws {
        // Given a committed batch
        let store = try openStore()
        _ = try store.commit([record(0, activity("e1")), record(1, "garbage")], receivedAt: Instant(seconds: 0))
        // When the next batch fails inside its transaction, after state, outbox and offsets were written
        struct Crash: Error {}
        #expect(throws: Crash.self) {
            _ = try store.commit([record(2, activity("e2")), record(3, topic: "billing", charge("c1", cents: 500)), record(4, "{}")],
                                 receivedAt: Instant(seconds: 0)) { _ in throw Crash() }
        }
        // Then neither the store in memory nor a fresh reader sees any of it
        for reopened in [store, try openStore()] {
            let profile = try #require(try reopened.profile(of: "u1"))
            #expect(profile.lifetimeActivities == 1)
            #expect(profile.lifetimeSpendCents == 0)
            #expect(try reopened.storedOffsets() == ["activity": 2])
            #expect(try reopened.outboxDepth() == 1)
        }
        // And replaying the same records after the "restart" applies them exactly once
        let store2 = try openStore()
        let outcome = try store2.commit([record(2, activity("e2")), record(3, topic: "billing", charge("c1", cents: 500)), record(4, "{}")],
                                        receivedAt: Instant(seconds: 0))
        #expect(outcome.applied == 2)
        #expect(outcome.deadLettered == 1)
        let profile = try #require(try store2.profile(of: "u1"))
        #expect(profile.lifetimeActivities == 2)
        #expect(profile.lifetimeSpendCents == 500)
        #expect(try store2.storedOffsets() == ["activity": 5, "billing": 4])
    }

    @Test func theOutboxHighWaterAnnouncesNewRowsAndSurvivesARestart() throws {
        // The relay skips a database whose high-water mark it has already produced up to: the
        // mark must move with every committed row and be read back from the file on restart,
        // or rows left unsent by a crash would never be published.
        let store = try openStore()
        #expect(store.outboxHighWater == 0)
        _ = try store.commit([record(0, "garbage"), record(1, activity("e1")), record(2, "{}")], receivedAt: Instant(seconds: 0))
        let newest = try #require(try store.outbox(after: 0, limit: 10).last?.id)
        #expect(store.outboxHighWater == newest)
        #expect(try openStore().outboxHighWater == newest)
    }

    @Test func aRedeliveredMessageBelowTheStoredOffsetIsNotAppliedAgain() throws {
        let store = try openStore()
        _ = try store.commit([record(0, activity("e1")), record(1, activity("e2"))], receivedAt: Instant(seconds: 0))
        // Even with an id the dedupe set has forgotten, offset 1 must not count twice.
        try store.db.execute("UPDATE user_days SET evidence = NULL")
        let again = try store.commit([record(1, activity("e2")), record(2, activity("e3"))], receivedAt: Instant(seconds: 0))
        #expect(again.alreadyApplied == 1)
        #expect(again.applied == 1)
        #expect(try store.profile(of: "u1")?.lifetimeActivities == 3)
    }

    @Test func aLaggingPartitionStillRecognisesItsDuplicatesWhenTheInstanceClockRunsAhead() throws {
        // Other partitions were consumed faster: the instance clock is 20 days past this
        // partition's events. The dedupe horizon is measured in this partition's event time.
        let store = try openStore()
        _ = try store.commit([record(0, activity("e1", ts: "2026-03-01T10:00:00Z"))], receivedAt: Instant(seconds: 0), wallClock: try RFC3339.parse("2026-03-21T00:00:00Z").get())
        let again = try store.commit([record(1, activity("e1", ts: "2026-03-01T10:00:00Z")),
                                      record(2, activity("e2", ts: "2026-03-02T10:00:00Z"))],
                                     receivedAt: Instant(seconds: 0),
                                     wallClock: try RFC3339.parse("2026-03-22T00:00:00Z").get())
        #expect(again.duplicates == 1)
        #expect(try store.profile(of: "u1")?.lifetimeActivities == 2)
    }

    @Test func duplicatesAcrossBatchesAndTopicsAreIgnored() throws {
        let store = try openStore()
        let first = try store.commit([record(0, activity("e1")), record(1, activity("e1"))], receivedAt: Instant(seconds: 0))
        #expect(first.applied == 1 && first.duplicates == 1)
        // The same event id on the billing topic is a duplicate too (dedupe spans both topics).
        let second = try store.commit([record(0, topic: "billing", charge("e1", cents: 100)), record(2, activity("e1"))],
                                      receivedAt: Instant(seconds: 0))
        #expect(second.applied == 0 && second.duplicates == 2)
        // An invalid message does not use up an id.
        _ = try store.commit([record(3, #"{"event_id":"e9","user_id":"u1","type":"session"}"#), record(4, activity("e9"))],
                             receivedAt: Instant(seconds: 0))
        #expect(try store.profile(of: "u1")?.lifetimeActivities == 2)
    }

    @Test func stateIsTheSameForAnyOrderAndBatching() throws {
        var records: [String] = []
        for i in 0..<60 {
            let user = "u\(i % 5)"
            let ts = "2026-03-0\(1 + i % 7)T1\(i % 10):00:00Z"
            records.append(i % 3 == 0 ? charge("c\(i)", user: user, cents: 100 + i) : activity("a\(i)", user: user, ts: ts))
        }
        records.append(records[1])  // an exact duplicate (a different event reusing an id is first-wins, by SPEC §8)
        func build(_ payloads: [String], batch: Int, name: String) throws -> StateReader {
            let dir = directory.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let store = try PartitionStore(directory: dir, partition: 0, calendar: .utc)
            let all = payloads.enumerated().map { record(Int64($0.offset), $0.element.contains("charge") ? "billing" : "activity", $0.element) }
            for start in stride(from: 0, to: all.count, by: batch) {
                _ = try store.commit(Array(all[start..<min(start + batch, all.count)]), receivedAt: Instant(seconds: 0))
            }
            return try StateReader(directory: dir)
        }
        func snapshot(_ reader: StateReader) throws -> [String] {
            var lines: [String] = []
            try reader.forEachUser(daysFrom: 0) { user in
                lines.append("\(user.userID) \(user.profile) \(user.days.sorted { $0.key < $1.key })")
            }
            return lines
        }
        let inOrder = try snapshot(try build(records, batch: 1000, name: "a"))
        let shuffled = try snapshot(try build(records.shuffled(), batch: 7, name: "b"))
        #expect(inOrder == shuffled)
        #expect(inOrder.count == 5)
    }

    func record(_ offset: Int64, _ topic: String, _ payload: String) -> DecodedRecord { record(offset, topic: topic, payload) }
}

/// A partition that moved to another instance resumes from a state older than what the previous
/// owner published (a snapshot): the previous owner's last membership message about a user may
/// be from a batch the new owner never sees as such.
@Suite struct PartitionTakeoverTests {
    static let setup = SegmentSetup(catalog: SegmentCatalog(
        segments: [try! SegmentDefinition(name: "one_session", ruleText: "activities(30d) = 1")], kpis: []), membershipTopic: "membership")

    static func session(_ offset: Int64, _ id: String) -> DecodedRecord {
        let bytes = Array(#"{"event_id":"\#(id)","user_id":"u1","type":"session","ts":"2026-03-01T10:0\#(offset):00Z"}"#.utf8)
        return DecodedRecord(topic: "activity", partition: 0, offset: offset, key: nil, payload: bytes,
                             decoded: EventDecoder().decode(bytes, from: .activity, wallClock: Instant(seconds: 4_000_000_000)))
    }

    func membershipMessages(_ store: PartitionStore) throws -> [String] {
        try store.outbox(after: 0, limit: 100).filter { $0.topic == "membership" }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    @Test(arguments: [false, true])
    func usersTheGroupAlreadyProcessedHaveTheirMembershipPublishedAgain(restating: Bool) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("takeover-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Given the previous owner's snapshot before u1's first session, then its batch with that
        // session alone: it published "enter one_session", and died before the second session.
        let previous = try PartitionStore(directory: directory, partition: 0, calendar: .utc, segments: Self.setup)
        let snapshot = directory.appendingPathComponent("s.snapshot")
        try previous.writeSnapshot(to: snapshot)
        _ = try previous.commit([Self.session(0, "e0")], receivedAt: Instant(seconds: 0))
        #expect(try membershipMessages(previous).count == 1)

        // When the new owner resumes from the snapshot and reads both sessions in one batch
        let elsewhere = directory.appendingPathComponent("new-owner")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        try PartitionStore.install(snapshot: snapshot, directory: elsewhere, partition: 0)
        let next = try PartitionStore(directory: elsewhere, partition: 0, calendar: .utc, segments: Self.setup)
        if restating { next.restateUntil = ["activity": 1] }  // the group had committed offset 1
        _ = try next.commit([Self.session(0, "e0"), Self.session(1, "e1")], receivedAt: Instant(seconds: 0))

        // Then both changes are published, each at its event (the previous owner may not have
        // relayed its "enter"), and restating, u1's membership again ("exit": two sessions) as of
        // the pair's time after them, so the topic does not end on the previous owner's "enter"
        let messages = try membershipMessages(next)
        if restating {
            #expect(messages == [#"{"user_id":"u1","segment":"one_session","change":"enter","as_of":"2026-03-01T10:00:00Z","cause":"event"}"#,
                                 #"{"user_id":"u1","segment":"one_session","change":"exit","as_of":"2026-03-01T10:01:00Z","cause":"event"}"#,
                                 #"{"user_id":"u1","segment":"one_session","change":"exit","as_of":"2026-03-01T10:01:00Z","cause":"event"}"#])
            #expect(next.restateUntil.isEmpty, "consumed past the group's progress: back to publishing changes only")
        } else {
            #expect(messages == [#"{"user_id":"u1","segment":"one_session","change":"enter","as_of":"2026-03-01T10:00:00Z","cause":"event"}"#,
                                 #"{"user_id":"u1","segment":"one_session","change":"exit","as_of":"2026-03-01T10:01:00Z","cause":"event"}"#])
        }
    }
}
