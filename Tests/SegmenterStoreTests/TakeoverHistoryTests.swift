import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore
import SegmenterTestKit

/// SPEC §7 across a partition move: a new owner resumes from an older state (a snapshot) and
/// replays what the group had consumed already (`restateUntil`), while the previous owner's last
/// messages may never have reached the topic. Folded at every instant either history changes
/// (and every local midnight), what the topic then holds (the previous owner's relayed messages,
/// then the new owner's) is the one-record-at-a-time history, whatever the catch-up's batch size. Before the fix, the replaying owner published the restated users' changes
/// only as one restatement at its catch-up batch's clock: days late, and never for the changes
/// past the group's progress in that batch.
@Suite struct TakeoverHistoryTests {
    /// (snapshot, relayed, committed): the batch (in quarters of the input) after which the new
    /// owner's state was snapshotted, the previous owner's messages last reached the topic, and
    /// the previous owner committed its offsets (the group's progress).
    static let takeovers = [(1, 2, 2), (1, 1, 2), (0, 1, 3), (1, 3, 3), (2, 2, 2)]

    @Test(arguments: Array(UInt64(1)...UInt64(10)))
    func aTakeoverFromAnOlderStatePublishesTheOneRecordAtATimeHistoryAtEveryBatchSize(seed: UInt64) throws {
        let records = HistoryTests.input(seed: seed)
        let expected = HistoryTests.reference(records).published
        let batches = stride(from: 0, to: records.count, by: 7).map { Array(records[$0..<min($0 + 7, records.count)]) }
        let quarter = batches.count / 4
        let cases = Self.takeovers.flatMap { shape in [7, 500, records.count].map { (shape.0 * quarter, shape.1 * quarter, shape.2 * quarter, $0) } }
        for (snapshot, relayed, committed, catchUp) in cases {
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("takeover-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: base) }
            // Given the previous owner, which committed through batch `committed`, its messages relayed through `relayed`
            let previous = try Self.store(in: base.appendingPathComponent("previous"))
            var relayedID: Int64 = 0
            for (index, batch) in batches.prefix(committed + 1).enumerated() {
                try Self.commit(batch, to: previous, records: records)
                if index == relayed { relayedID = try previous.outbox(after: 0, limit: 1_000_000).last?.id ?? 0 }
            }
            let fromPrevious = try Self.changes(previous, after: 0).filter { $0.id <= relayedID }.map(\.change)
            // When the new owner resumes from the state after batch `snapshot` and catches up in batches of `catchUp`
            let next = try Self.store(in: base.appendingPathComponent("next"))
            for batch in batches.prefix(snapshot + 1) { try Self.commit(batch, to: next, records: records) }
            let resumedAt = try next.outbox(after: 0, limit: 1_000_000).last?.id ?? 0
            let groupProgress = batches.prefix(committed + 1).joined()
            for topic in ["activity", "billing"] {
                next.restateUntil[topic] = (groupProgress.filter { $0.topic == topic }.map(\.offset).max() ?? -1) + 1
            }
            let rest = Array(batches.dropFirst(snapshot + 1).joined())
            for start in stride(from: 0, to: rest.count, by: catchUp) {
                try Self.commit(Array(rest[start..<min(start + catchUp, rest.count)]), to: next, records: records)
            }
            let published = fromPrevious + (try Self.changes(next, after: resumedAt).map(\.change))
            // Then at every instant either history changes, and every local midnight, the topic says what the reference says
            let changes = Set((expected + published).map(\.asOf))
            let calendar = HistoryTests.calendar
            let midnights = (calendar.day(of: changes.min()!)...calendar.day(of: changes.max()!) + 1).map { calendar.start(of: $0) }
            let instants = changes.union(midnights).sorted()
            let want = expected.members(at: instants), got = published.members(at: instants)
            let differing = instants.filter { want[$0] != got[$0] }.map { instant in
                "\(instant): missing \(want[instant]!.subtracting(got[instant]!).sorted().prefix(3)), extra \(got[instant]!.subtracting(want[instant]!).sorted().prefix(3))"
            }
            #expect(differing.isEmpty, """
                seed \(seed), snapshot after batch \(snapshot), relayed through \(relayed), committed through \(committed), catch-up batches of \(catchUp): \
                \(differing.count) of \(instants.count) instants differ: \(differing.prefix(3))
                """)
        }
    }

    static func store(in directory: URL) throws -> PartitionStore {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return try PartitionStore(directory: directory, partition: 0, calendar: HistoryTests.calendar, dedupeHorizonSeconds: HistoryTests.horizonDays * 86_400,
                                  segments: SegmentSetup(catalog: HistoryTests.catalog, membershipTopic: "membership"))
    }

    static func commit(_ batch: [HistoryTests.Record], to store: PartitionStore, records: [HistoryTests.Record]) throws {
        _ = try store.commit(batch.map(HistoryTests.decoded), receivedAt: Instant(seconds: 0), inputEnds: .known(HistoryTests.ends(records)))
    }

    static func changes(_ store: PartitionStore, after id: Int64) throws -> [(id: Int64, change: ReferenceConsumer.Change)] {
        try store.outbox(after: id, limit: 1_000_000).filter { $0.topic == "membership" }.compactMap { row in
            ReferenceConsumer.Change(message: row.value).map { (row.id, $0) }
        }
    }
}
