import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore

/// The drill-down of a firing drop alert names the sub-group that explains it (issue 4).
@Suite struct DrillDownTests {
    enum Incident { case cohort, region }

    /// 60 users over three sign-up weeks and three regions; everyone has 30 active minutes
    /// today except the incident's group, which has none.
    func drillDown(_ incident: Incident) throws -> [DrillDownEntry] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("drill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let catalog = SegmentCatalog(segments: [try SegmentDefinition(name: "eu", ruleText: "attr.region = 'eu'")],
                                     kpis: [try KPIDefinition(name: "minutes", kind: .avg, expressionText: "active_minutes(1d)", segments: nil)])
        let store = try PartitionStore(directory: directory, partition: 0, calendar: .utc, segments: SegmentSetup(catalog: catalog))
        let decoder = EventDecoder()
        let regions = ["eu", "us", "apac"]
        let weeks = ["2026-03-02", "2026-03-09", "2026-03-16"]  // Mondays
        var records: [DecodedRecord] = []
        func add(_ payload: String) {
            let bytes = Array(payload.utf8)
            records.append(DecodedRecord(topic: "activity", partition: 0, offset: Int64(records.count), key: nil, payload: bytes,
                                         decoded: decoder.decode(bytes, from: .activity, wallClock: Instant(seconds: 4_000_000_000))))
        }
        // The sign-ups as they happened, then today's sessions (a sign-up read after the sessions
        // would be weeks behind the pair's watermark: older than the dedupe horizon).
        for n in (0..<60).sorted(by: { ($0 % 3, $0) < ($1 % 3, $1) }) {
            add(#"{"event_id":"s\#(n)","user_id":"u\#(n)","type":"signup","ts":"\#(weeks[n % 3])T12:00:00Z","attributes":{"region":"\#(regions[(n / 3) % 3])"}}"#)
        }
        for n in 0..<60 {
            let week = n % 3
            let region = regions[(n / 3) % 3]
            let silent = incident == .cohort ? week == 2 : region == "apac"
            if !silent {
                add(#"{"event_id":"a\#(n)","user_id":"u\#(n)","type":"session","ts":"2026-03-20T10:00:00Z","duration_s":1800}"#)
            }
        }
        _ = try store.commit(records, receivedAt: Instant(seconds: 0),
                             wallClock: try RFC3339.parse("2026-03-20T23:00:00Z").get())
        var accumulator = DrillDownAccumulator(kind: .avg)
        try store.drillDown(segment: "all", kpi: "minutes", into: &accumulator, dimensions: DrillDownAccumulator.dimensions(catalog))
        return accumulator.ranked(baseline: 30)
    }

    @Test func aCohortIncidentRanksThatCohortFirst() throws {
        let top = try drillDown(.cohort)
        #expect(top.first?.dimension == "signup_week")
        #expect(top.first?.group == "2026-03-16")
        #expect(top.first?.value == 0)
        #expect(abs((top.first?.contribution ?? 0) + 10) < 1e-9)  // a third of the users, 30 minutes below: −10
    }

    @Test func aRegionIncidentRanksThatRegionFirst() throws {
        let top = try drillDown(.region)
        #expect(top.first?.dimension == "attr.region")
        #expect(top.first?.group == "apac")
        #expect(top.first?.members == 18)  // regions rotate every three users: apac holds 18 of 60
    }
}
