import Testing
@testable import SegmenterCore

/// The KPI leader's chain as a pure value (issue 27): stepped in memory, with no database, it
/// yields the deltas, alert changes and days' ends that the publisher then writes.
@Suite struct KPIChainTests {
    static let catalog = SegmentCatalog(segments: [try! SegmentDefinition(name: "spenders", ruleText: "spend(2d) > 40")])
    static let spenders = KPIKey(segment: "spenders", kpi: SegmentCatalog.membersKPI)
    static let alert = AlertDefinition(name: "few_spenders", segment: "spenders", kpi: SegmentCatalog.membersKPI,
                                       condition: .threshold(.less, 3), forSeconds: 600)
    static let grid = KPIGrid(seconds: 60)

    static func partials(spenders: Int64) -> [KPIKey: KPIPartial] {
        [KPIKey(segment: "all", kpi: SegmentCatalog.membersKPI): KPIPartial(counted: 10, total: 10),
         Self.spenders: KPIPartial(counted: spenders, total: Double(spenders))]
    }

    @Test func aRunChartsEveryStepFiresAfterForAndClosesTheDayWithoutAnyStore() throws {
        let midnight = Instant(seconds: 1_793_577_600)  // 2026-11-02T00:00:00Z
        let first = Self.grid.bucket(of: midnight.adding(seconds: -20 * 60))  // 23:40
        var chain = KPIChain()
        var written: [KPIChain.Step] = []
        // Given 5 spenders at 23:40, 2 from 23:45 (below 3: pending for 10 minutes), nothing moves after
        let fold = [PartialsFold.Step(bucket: first, partials: Self.partials(spenders: 5)),
                    PartialsFold.Step(bucket: first + 5, partials: Self.partials(spenders: 2), changedSegments: ["spenders"])]
        let last = first + 30  // 00:10
        let before = chain
        let messages = try chain.run(fold, through: last, current: Self.partials(spenders: 2), now: Self.grid.end(of: last), grid: Self.grid,
                                     catalog: Self.catalog, causes: [:], alerts: [Self.alert]) { written.append($0) }
        // Then the steps: both of the fold, the tick at which `for:` elapsed, the close at 00:10, the deltas at the watermark
        #expect(written.map(\.bucket) == [first, first + 5, first + 15, last, nil])
        let firing = try #require(written.first { !$0.alertMessages.isEmpty })
        #expect(firing.now == Self.grid.end(of: first + 15) && firing.alertMessages.map(\.state) == [.firing])
        // The day's end is the last step of 2026-11-01: 2 spenders
        let closing = try #require(written.first { !$0.closedDays.isEmpty })
        #expect(closing.closedDays.first?.1[Self.spenders] == 2 && chain.history[Self.spenders] == [closing.closedDays[0].0: 2])
        // One delta per pair per run, at the watermark, first in its chain
        let deltas = try #require(written.last?.deltas)
        #expect(deltas.first { $0.key == Self.spenders }?.link == KPIChain.Link(value: 2, seq: 1))
        #expect(messages == deltas.count + 1)
        #expect(chain.foldedBucket == last && chain.alertStatus["few_spenders"]?.state == .firing)
        // And the value the run started from is untouched (a failed write keeps it)
        #expect(before.foldedBucket == nil && before.published.isEmpty)
        // A second run with nothing new writes only its closing step and no message
        written = []
        let again = try chain.run([PartialsFold.Step](), through: last + 1, current: Self.partials(spenders: 2), now: Self.grid.end(of: last + 1),
                                  grid: Self.grid, catalog: Self.catalog, causes: [:], alerts: [Self.alert]) { written.append($0) }
        #expect(again == 0 && written.isEmpty, "nothing stepped: no previous step in this run to close from")
    }
}
