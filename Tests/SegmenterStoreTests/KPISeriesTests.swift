import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore

/// The KPI series and alert firing periods the publisher keeps for the dashboard's charts:
/// one value per pair per resolution bucket (the last wins), a period per firing, bounded.
@Suite struct KPISeriesTests {
    let catalog = SegmentCatalog(segments: [try! SegmentDefinition(name: "new", ruleText: "days_since_signup <= 7")], kpis: [])
    let alert = AlertDefinition(name: "few_new", segment: "new", kpi: "members", condition: .threshold(.less, 3))

    func partials(new: Int64) -> [KPIKey: KPIPartial] {
        [KPIKey(segment: "all", kpi: "members"): KPIPartial(counted: 10, total: 10),
         KPIKey(segment: "new", kpi: "members"): KPIPartial(counted: new, total: Double(new))]
    }

    @Test func valuesPerBucketAndFiringPeriodsAreKeptReadBackAndPruned() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("series-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let start = Instant(seconds: 1_780_000_000 / 86_400 * 86_400)
        let store = try PartitionStore(directory: directory, partition: 0, calendar: .utc)
        let publisher = try KPIPublisher(store: store, topic: "kpis")
        func publish(minutes: Int64, new: Int64) throws {
            try publisher.publish(catalog: catalog, partials: partials(new: new), now: start.adding(seconds: minutes * 60),
                                  causes: [:], alerts: [alert], alertTopic: "alerts")
        }
        try publish(minutes: 0, new: 5)
        try publish(minutes: 1, new: 4)    // same 5-minute bucket: replaces the value above
        try publish(minutes: 10, new: 2)   // fires
        try publish(minutes: 20, new: 1)   // still firing
        try publish(minutes: 30, new: 6)   // resolves
        try publish(minutes: 40, new: 1)   // fires again, still open
        let path = store.path

        var (series, periods) = try KPISeries.read(databasePath: path, segment: "new", alerts: ["few_new"])
        #expect(series["members"]?.map(\.value) == [4, 2, 1, 6, 1])
        #expect(series["members"]?.first?.at == start.adding(seconds: 60))
        #expect(periods == [
            KPISeries.Period(alert: "few_new", started: start.adding(seconds: 600), ended: start.adding(seconds: 1800)),
            KPISeries.Period(alert: "few_new", started: start.adding(seconds: 2400), ended: nil),
        ])

        // Fifteen days later (a new day prunes): only what is within the retention stays.
        try publisher.publish(catalog: catalog, partials: partials(new: 7), now: start.adding(seconds: 15 * 86_400),
                              causes: [:], alerts: [alert], alertTopic: "alerts")
        (series, periods) = try KPISeries.read(databasePath: path, segment: "new", alerts: ["few_new"])
        #expect(series["members"]?.map(\.value) == [7])
        // The first period ended before the retention and is gone; the open one resolved now.
        #expect(periods == [KPISeries.Period(alert: "few_new", started: start.adding(seconds: 2400), ended: start.adding(seconds: 15 * 86_400))])
    }

    /// Pruning goes pair by pair along the key: pairs charted before a restart (and by a config
    /// since changed) are pruned too, and exactly at the retention, not at a bucket's edge.
    @Test func aReopenedPublisherPrunesEveryPairItFindsExactlyAtTheRetention() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("series-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let start = Instant(seconds: 1_780_000_000 / 86_400 * 86_400)
        var store: PartitionStore? = try PartitionStore(directory: directory, partition: 0, calendar: .utc)
        var publisher: KPIPublisher? = try KPIPublisher(store: store!, topic: "kpis")
        let older = SegmentCatalog(segments: [try SegmentDefinition(name: "gone", ruleText: "accounts >= 2")])
        try publisher!.publish(catalog: older, partials: [KPIKey(segment: "gone", kpi: "members"): KPIPartial(counted: 3, total: 3)],
                               now: start.adding(seconds: 120), causes: [:])
        try publisher!.publish(catalog: catalog, partials: partials(new: 5), now: start.adding(seconds: 240), causes: [:])
        try publisher!.publish(catalog: catalog, partials: partials(new: 6), now: start.adding(seconds: 86_400 + 60), causes: [:])
        let path = store!.path
        (publisher, store) = (nil, nil)

        store = try PartitionStore(directory: directory, partition: 0, calendar: .utc)
        publisher = try KPIPublisher(store: store!, topic: "kpis")
        // A day's end 14 days after 00:03 (a reopened publisher charts every pair again): the cutoff,
        // 00:03 of the first day, takes the points of 00:02 (the old config's pair among them) and
        // keeps those of 00:04, in the same 5-minute bucket.
        try publisher!.publish(catalog: catalog, partials: partials(new: 7), now: start.adding(seconds: 14 * 86_400 + 180), causes: [:])
        #expect(try KPISeries.read(databasePath: path, segment: "gone", alerts: []).series["members"] == nil)
        #expect(try KPISeries.read(databasePath: path, segment: "new", alerts: []).series["members"]?.map(\.value) == [5, 6, 7])
        #expect(try KPISeries.read(databasePath: path, segment: "all", alerts: []).series["members"]?.map(\.value) == [10, 10])
    }

    @Test func aStateWithoutSeriesReadsEmpty() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("series-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = try PartitionStore(directory: directory, partition: 0, calendar: .utc)
        let (series, periods) = try KPISeries.read(databasePath: store.path, segment: "new", alerts: ["few_new"])
        #expect(series.isEmpty && periods.isEmpty)
        let missing = try KPISeries.read(databasePath: directory.appendingPathComponent("nope.sqlite").path, segment: "new", alerts: [])
        #expect(missing.series.isEmpty)
    }
}
