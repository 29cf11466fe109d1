import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore
import SQLite

/// The pair's watermark with real SQLite files, across a reopen (a restart): users who arrived
/// while the pair had no time, and timers that fell due in a catch-up, keep their causes.
@Suite struct WatermarkStoreTests {
    static let setup = SegmentSetup(catalog: SegmentCatalog(segments: [
        try! SegmentDefinition(name: "inactive_new_users", ruleText: "hours_since_signup >= 24 and activities_since_signup = 0"),
        try! SegmentDefinition(name: "recent_spenders", ruleText: "spend(3d) > 100"),
    ], kpis: []), membershipTopic: "membership")
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("watermark-\(UUID().uuidString)")

    func open() throws -> PartitionStore {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return try PartitionStore(directory: directory, partition: 0, calendar: .utc, segments: Self.setup)
    }

    func record(_ topic: String, _ offset: Int64, _ fields: String, _ id: String, at ts: String) -> DecodedRecord {
        let bytes = Array(#"{"event_id":"\#(id)","user_id":"u1","ts":"\#(ts)",\#(fields)}"#.utf8)
        return DecodedRecord(topic: topic, partition: 0, offset: offset, key: nil, payload: bytes,
                             decoded: EventDecoder().decode(bytes, from: topic == "billing" ? .billing : .activity, wallClock: Instant(seconds: 4_000_000_000)))
    }

    func messages(_ store: PartitionStore) throws -> [String] {
        try store.outbox(after: 0, limit: 100).filter { $0.topic == "membership" }.map {
            let text = String(decoding: $0.value, as: UTF8.self)
            let change = text.contains("\"enter\"") ? "enter" : "exit"
            let segment = text.contains("inactive_new_users") ? "inactive_new_users" : "recent_spenders"
            let cause = text.contains("\"cause\":\"time\"") ? "time" : "event"
            let asOf = text.components(separatedBy: "\"as_of\":\"")[1].prefix(20)
            return "\(change) \(segment) by \(cause) at \(asOf)"
        }
    }

    @Test(arguments: [false, true])
    func aUserWhoArrivedWhileThePairHadNoTimeEntersByTimeLater(reopening: Bool) throws {
        let billingBacklog = BatchProcessor.InputEnds.known(["activity": 10, "billing": 10])
        var store = try open()
        // Given u1's sign-up and a charge 5 hours later read while billing, with a backlog, had delivered nothing
        _ = try store.commit([record("activity", 0, #""type":"signup""#, "s", at: "2026-03-01T02:00:00Z")], receivedAt: Instant(seconds: 0),
                             inputEnds: billingBacklog)
        _ = try store.commit([record("billing", 0, #""type":"charge","amount":"60","currency":"USD""#, "c1", at: "2026-03-01T07:00:00Z")],
                             receivedAt: Instant(seconds: 0), inputEnds: billingBacklog)
        if reopening { store = try open() }
        // When activity runs ahead and billing brings a charge 30 hours after sign-up
        _ = try store.commit([record("activity", 1, #""type":"session""#, "x", at: "2026-03-03T00:00:00Z").with(user: "u2"),
                              record("billing", 1, #""type":"charge","amount":"60","currency":"USD""#, "c2", at: "2026-03-02T06:00:00Z")],
                             receivedAt: Instant(seconds: 0), inputEnds: billingBacklog)
        // Then u1 entered inactive_new_users 24 hours after signing up, by time, and recent_spenders
        // at the second charge (the first waited for the pair's time, then counted at its own)
        let published = try messages(store)
        #expect(published == ["enter inactive_new_users by time at 2026-03-02T02:00:00Z", "enter recent_spenders by event at 2026-03-02T06:00:00Z"],
                "\(published)")
    }

    /// Events that wait for the pair's clock wake their user from the store's own list, which a
    /// restart rebuilds from the waiting rows: no timer row is armed for them (in real time about
    /// half the events wait a batch, and a row armed and disarmed for each was most timer writes).
    @Test func aWaitingEventArmsNoTimerAndIsAppliedWhenThePairsClockReachesItAfterARestart() throws {
        let billingBacklog = BatchProcessor.InputEnds.known(["activity": 10, "billing": 10])
        var store = try open()
        // Given u1's sign-up and a session, read while billing, with a backlog, had delivered nothing
        _ = try store.commit([record("activity", 0, #""type":"signup""#, "s", at: "2026-03-01T02:00:00Z"),
                              record("activity", 1, #""type":"session""#, "x", at: "2026-03-01T05:00:00Z")],
                             receivedAt: Instant(seconds: 0), inputEnds: billingBacklog)
        let database = try SQLiteConnection(path: directory.appendingPathComponent("partition-0000.sqlite").path, readOnly: true)
        func count(_ table: String) throws -> Int64 {
            let statement = try database.prepare("SELECT count(*) FROM \(table)")
            _ = try statement.step()
            return statement.int64(0)
        }
        #expect(try count("pending_events") == 1)
        #expect(try count("timers") == 0)
        #expect(try store.profile(of: "u1") == nil)
        // When the service restarts and both topics bring another user's events, past u1's
        store = try open()
        _ = try store.commit([record("activity", 2, #""type":"session""#, "y", at: "2026-03-01T08:00:00Z").with(user: "u2"),
                              record("billing", 0, #""type":"charge","amount":"60","currency":"USD""#, "c1", at: "2026-03-01T07:00:00Z").with(user: "u2")],
                             receivedAt: Instant(seconds: 0), inputEnds: billingBacklog)
        // Then u1's events took effect once the pair's clock (07:00) passed them, though nothing of u1's arrived
        let profile = try #require(try store.profile(of: "u1"))
        #expect(profile.signupAt == Instant(seconds: 1_772_330_400))
        #expect(profile.lifetimeActivities == 1)  // the session (a sign-up is not an activity)
        #expect(try count("pending_events WHERE user_id = 'u1'") == 0)
        #expect(try count("pending_events WHERE user_id = 'u2'") == 1)  // u2's session, ahead of the pair's clock, waits
    }
}

extension DecodedRecord {
    func with(user: String) -> DecodedRecord {
        guard case var .success(event) = decoded else { return self }
        event = UserEvent(eventID: event.eventID, userID: user, ts: event.ts, body: event.body)
        return DecodedRecord(topic: topic, partition: partition, offset: offset, key: key, payload: payload, decoded: .success(event))
    }
}
