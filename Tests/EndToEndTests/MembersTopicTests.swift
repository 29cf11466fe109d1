import Foundation
import Testing
@testable import SegmenterStore
import SegmenterCore

/// `topics.members` (issue 26, item 2): the current membership as a compacted table beside the
/// change stream. A new consumer that reads it from the start and keeps the latest value per
/// key (a tombstone deletes it) has exactly the members the state holds — also after a SIGKILL
/// mid-stream (outputs at least once; a table is indifferent to a repeated row).
@Suite(.serialized) struct MembersTopicTests {
    @Test func readingTheMembersTableFromTheStartGivesTheCurrentMemberships() throws {
        let harness = try Harness()
        let lateCohort = DayCalendar.isoDate(DayNumber(Int64(Date().timeIntervalSince1970) / 86_400) - 3)
        let config = try harness.writeConfig(batch: 150, extra: SegmentOutputsTests.segmentsYAML(lateCohort: lateCohort) + """

            topics:
              members: segment-members
            """)
        let produced = try harness.generate(Harness.recent(days: 10) + ["--users", "120", "--events", "4000", "--seed", "71"])
        try harness.runKilledMidStream(config: config, total: produced.total)

        // The table as a consumer builds it: key SEGMENT|USER, latest value, a null value deletes.
        let arguments = ["-b", harness.bootstrap, "-C", "-t", "segment-members", "-e", "-q", "-f", "%k\t%S\t%s\n"]
        let (status, text) = try Processes.run(harness.kcat, arguments)
        try #require(status == 0)
        var table: [String: String] = [:]
        var tombstones = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2 else { continue }
            if parts[1] == "-1" {
                table[String(parts[0])] = nil
                tombstones += 1
            } else {
                table[String(parts[0])] = parts.count == 3 ? String(parts[2]) : ""
            }
        }
        #expect(tombstones > 0, "some users left a segment: exits are tombstones")

        // Then it equals the memberships the state holds (every segment but `all`), and each
        // value is that member's enter record.
        let state = try StateReader(directory: harness.work.appendingPathComponent("state")).allMemberships()
        let expected = Set(state.flatMap { user, segments in segments.filter { $0 != SegmentCatalog.allSegment }.map { "\($0)|\(user)" } })
        #expect(Set(table.keys) == expected, "\(Set(table.keys).symmetricDifference(expected).sorted().prefix(10))")
        #expect(expected.count > 50)
        for (key, value) in table {
            let record = try #require(try JSONSerialization.jsonObject(with: Data(value.utf8)) as? [String: Any], "\(key): \(value)")
            #expect(record["change"] as? String == "enter" && "\(record["segment"]!)|\(record["user_id"]!)" == key, "\(key): \(value)")
        }
    }
}
