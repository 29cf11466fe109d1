import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore

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
}

extension DecodedRecord {
    func with(user: String) -> DecodedRecord {
        guard case var .success(event) = decoded else { return self }
        event = UserEvent(eventID: event.eventID, userID: user, ts: event.ts, body: event.body)
        return DecodedRecord(topic: topic, partition: partition, offset: offset, key: key, payload: payload, decoded: .success(event))
    }
}
