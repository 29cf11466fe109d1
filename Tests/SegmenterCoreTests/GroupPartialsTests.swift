import Testing
@testable import SegmenterCore

/// How the KPI leader combines its own partitions' partials with the other instances' announcements.
@Suite struct GroupPartialsTests {
    static let members = KPIKey(segment: "big", kpi: SegmentCatalog.membersKPI)
    static let spend = KPIKey(segment: "big", kpi: "spend")

    static func partials(_ members: Int64, spend: Double) -> KPIPartials {
        KPIPartials(values: [Self.members: KPIPartial(counted: members, total: Double(members)),
                             Self.spend: KPIPartial(counted: members, total: spend)])
    }

    @Test func anAnnouncementReadsBackBitForBit() throws {
        // A total that is not a short decimal: the leader must add exactly what the owner holds.
        let total = 0.1 + 0.2 + 1e-9
        let announcement = PartialsAnnouncement(partition: 7, partials: [Self.spend: KPIPartial(counted: 3, total: total),
                                                                         Self.members: KPIPartial(counted: 3, total: 3)],
                                                group: "growth", instance: "host \"a\"/12", clock: Instant(seconds: 1_773_140_400))
        let decoded = try #require(PartialsAnnouncement.decode(announcement.encoded()))
        #expect(decoded == announcement)
        #expect(decoded.partials[Self.spend]!.total.bitPattern == total.bitPattern)
    }

    @Test func somethingElseOnTheTopicIsNotAnAnnouncement() {
        #expect(PartialsAnnouncement.decode(Array("not json".utf8)) == nil)
        #expect(PartialsAnnouncement.decode(Array(#"{"partition":"1","partials":[]}"#.utf8)) == nil)
        #expect(PartialsAnnouncement.decode(Array(#"{"partition":1,"partials":[{"segment":"s","kpi":"k","counted":1}]}"#.utf8)) == nil)
    }

    @Test func ownedPartitionsCountLiveAndTheOthersByTheirLatestAnnouncement() {
        var group = GroupPartials()
        group.receive(PartialsAnnouncement(partition: 1, partials: Self.partials(5, spend: 50).values, instance: "b", clock: nil))
        group.receive(PartialsAnnouncement(partition: 1, partials: Self.partials(6, spend: 70).values, instance: "b", clock: nil))
        // A stale announcement of a partition this instance now owns is ignored.
        group.receive(PartialsAnnouncement(partition: 0, partials: Self.partials(100, spend: 1000).values, instance: "old", clock: nil))
        let (global, missing) = group.global(owned: [0: Self.partials(2, spend: 20)], partitionCount: 2)
        #expect(missing.isEmpty)
        #expect(global[Self.members] == KPIPartial(counted: 8, total: 8))
        #expect(global[Self.spend] == KPIPartial(counted: 8, total: 90))
    }

    @Test func aPartitionNobodyAnnouncedIsMissingRatherThanEmpty() {
        var group = GroupPartials()
        group.receive(PartialsAnnouncement(partition: 2, partials: Self.partials(1, spend: 1).values, instance: "b", clock: nil))
        let (_, missing) = group.global(owned: [0: Self.partials(2, spend: 20)], partitionCount: 4)
        #expect(missing == [1, 3])
    }
}
