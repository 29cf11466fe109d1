import Testing
@testable import SegmenterCore

/// The KPI leader's view of each partition over recent event time (SPEC §7: KPI series and
/// alerts follow the history): partials as of any covered bucket, from the stores or from
/// announcements, and the group's steps.
@Suite struct PartialsTimelineTests {
    static let members = KPIKey(segment: "big", kpi: SegmentCatalog.membersKPI)
    static func count(_ n: Int64) -> [KPIKey: KPIPartial] { [members: KPIPartial(counted: n, total: Double(n))] }
    static let grid = KPIGrid(seconds: 60)

    @Test func theGridPutsAChangeAtABoundaryInTheBucketThatEndsThere() {
        let midnight = Instant(seconds: 1_793_577_600)
        #expect(Self.grid.bucket(of: midnight) == Self.grid.lastComplete(at: midnight))
        #expect(Self.grid.bucket(of: midnight.adding(seconds: 1)) == Self.grid.bucket(of: midnight) + 1)
        #expect(Self.grid.end(of: Self.grid.bucket(of: midnight)) == midnight)
        #expect(Self.grid.lastComplete(at: midnight.adding(seconds: 59)) == Self.grid.bucket(of: midnight))
    }

    @Test func aPartitionAheadIsReadAsOfEachBucketAndTheGroupStepsOnlyWhereSomethingChanged() {
        // Given two partitions: one at bucket 110 with changes at 103 and 108, one at bucket 105 with a change at 102
        let ahead = PartialsTimeline(current: Self.count(9), clockBucket: 110, deltas: [103: Self.count(2), 108: Self.count(3)], coveredFrom: 100)
        let behind = PartialsTimeline(current: Self.count(4), clockBucket: 105, deltas: [102: Self.count(1)], coveredFrom: 100)
        #expect(ahead.partials(atEndOf: 105) == Self.count(6) && ahead.partials(atEndOf: 102) == Self.count(4))
        #expect(ahead.partials(atEndOf: 110) == Self.count(9) && behind.partials(atEndOf: 120) == Self.count(4))
        // When the group's watermark has completed bucket 105, after bucket 100 was published
        let (steps, skipped) = PartialsFold.steps(after: 100, through: 105, partitions: [ahead, behind])
        // Then the steps are 101 and each bucket with a change, each the sum as of its end
        #expect(skipped == nil)
        #expect(steps.map(\.bucket) == [101, 102, 103])
        let counts: [Int64?] = steps.map { $0.partials[Self.members]?.counted }
        #expect(counts == [7, 8, 10])
    }

    @Test func bucketsAPartitionCannotTellAreSkippedAndSaidSo() {
        // A partition restarted at bucket 200: changes before 201 are not known
        let restarted = PartialsTimeline(current: Self.count(5), clockBucket: 210, deltas: [205: Self.count(1)], coveredFrom: 201)
        let (steps, skipped) = PartialsFold.steps(after: 190, through: 207, partitions: [restarted])
        #expect(skipped == 191...199)
        let counts: [Int64?] = steps.map { $0.partials[Self.members]?.counted }
        #expect(steps.map(\.bucket) == [200, 205] && counts == [4, 5])
    }

    @Test func announcementsCarryTheirWindowAndTheLeaderJoinsConsecutiveOnes() throws {
        // Given a partition announcing, at minute 1,000, the changes of minutes 990 … 1,000
        let grid = Self.grid
        var first = PartialsAnnouncement(partition: 3, partials: Self.count(10), instance: "a", clock: grid.end(of: 1_000))
        first.bucketsFrom = 990
        first.buckets = [995: Self.count(2), 1_000: Self.count(1)]
        let decoded = try #require(PartialsAnnouncement.decode(first.encoded()))
        #expect(decoded == first)
        // and later, at minute 1,020, those of 1,010 … 1,020 (its window no longer reaches 1,001)
        var second = PartialsAnnouncement(partition: 3, partials: Self.count(12), instance: "a", clock: grid.end(of: 1_020))
        second.bucketsFrom = 1_010
        second.buckets = [1_015: Self.count(2)]
        var view = GroupPartials(grid: grid)
        view.receive(decoded)
        #expect(view.timelines[3]?.partials(atEndOf: 996) == Self.count(9))
        #expect(view.timelines[3]?.partials(atEndOf: 994) == Self.count(7))
        view.receive(second)
        // Then what falls between the two windows is not known; what both cover is
        #expect(view.timelines[3]?.partials(atEndOf: 1_005) == nil)
        #expect(view.timelines[3]?.partials(atEndOf: 1_012) == Self.count(10))
        // and a window that meets the previous one keeps the earlier knowledge
        var third = PartialsAnnouncement(partition: 3, partials: Self.count(13), instance: "a", clock: grid.end(of: 1_025))
        third.bucketsFrom = 1_015
        third.buckets = [1_015: Self.count(2), 1_022: Self.count(1)]
        view.receive(third)
        #expect(view.timelines[3]?.partials(atEndOf: 1_012) == Self.count(10))
    }
}
