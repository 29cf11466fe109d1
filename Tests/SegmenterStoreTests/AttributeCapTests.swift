import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore

/// Bounds on attributes (issue 25: one user was made to hold 240,000): an event setting too
/// many, or too long a value, is dead-lettered with the reason; a user holds at most 1,000
/// names, new ones past that are counted and not stored, known ones still change.
@Suite struct AttributeCapTests {
    func record(_ offset: Int64, _ json: String) -> DecodedRecord {
        let bytes = Array(json.utf8)
        return DecodedRecord(topic: "activity", partition: 0, offset: offset, key: nil, payload: bytes,
                             decoded: EventDecoder().decode(bytes, from: .activity, wallClock: Instant(seconds: 4_000_000_000)))
    }

    func profile(_ id: Int, names: Range<Int>, value: String = "x") -> String {
        let attributes = names.map { "\"a\($0)\":\"\(value)\"" }.joined(separator: ",")
        return #"{"event_id":"p\#(id)","user_id":"u","type":"profile","ts":"2026-11-01T00:00:0\#(id)Z","attributes":{\#(attributes)}}"#
    }

    @Test func tooManyOrTooLongAttributesAreRefusedAndAUserHoldsAtMostTheCap() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attributes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try PartitionStore(directory: directory, partition: 0, calendar: .utc,
                                       segments: SegmentSetup(catalog: SegmentCatalog(segments: [try SegmentDefinition(name: "x", ruleText: "attr.a0 = 'y'")]),
                                                              membershipTopic: "membership"))
        // One event with 257 attributes, one with a 5,000-character value: dead letters, with why.
        let refused = try store.commit([record(0, profile(1, names: 0..<257)), record(1, profile(2, names: 0..<1, value: String(repeating: "v", count: 5_000)))],
                                       receivedAt: Instant(seconds: 0))
        #expect(refused.deadLettered == 2 && refused.applied == 0)
        let reasons = try store.outbox(after: 0, limit: 10).map { String(decoding: $0.value, as: UTF8.self) }
        #expect(reasons.contains { $0.contains("an event may set at most 256") } && reasons.contains { $0.contains("longer than 4096") }, "\(reasons)")

        // Five events of 250 new names each: the first 1,000 are kept, 250 counted as dropped.
        let records = (0..<5).map { record(Int64(2 + $0), profile(3 + $0, names: ($0 * 250)..<($0 * 250 + 250))) }
        let outcome = try store.commit(records, receivedAt: Instant(seconds: 0))
        #expect(outcome.applied == 5 && outcome.attributesDropped == 250, "\(outcome)")
        var held = try #require(try store.profile(of: "u"))
        #expect(held.attributes.count == UserProfile.maximumAttributes && held.attributes["a1249"] == nil)

        // A name the user holds still changes, and the rule reading it follows.
        let update = try store.commit([record(7, #"{"event_id":"p9","user_id":"u","type":"profile","ts":"2026-11-01T00:00:09Z","attributes":{"a0":"y"}}"#)],
                                      receivedAt: Instant(seconds: 0))
        #expect(update.attributesDropped == 0 && update.membershipChanges == 1)
        held = try #require(try store.profile(of: "u"))
        #expect(held.attributes["a0"]?.value == .string("y") && held.attributes.count == UserProfile.maximumAttributes)
    }
}
