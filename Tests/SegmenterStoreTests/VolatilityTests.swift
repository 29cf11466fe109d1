import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore
import SQLite

/// Segment volatility (issue 26, item 3): with `segment_volatility: true` every segment has
/// `entered_today`, `exited_today` and `volatility = (entered + exited) / members` per local day,
/// equal to the membership changes published that day, the same whatever the batching.
@Suite struct VolatilityTests {
    static var catalog: SegmentCatalog {
        var catalog = KPIStepTests.catalog
        catalog.volatility = true
        return catalog
    }

    @Test func todaysEntriesAndExitsAreThePublishedChangesOfTheDayAtEveryBatchSize() throws {
        // Given five days of sign-ups, activity and charges, consumed in small batches
        let records = KPIStepTests.records()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("volatility-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try PartitionStore(directory: directory, partition: 0, calendar: .utc,
                                       segments: SegmentSetup(catalog: Self.catalog, membershipTopic: "membership", kpiGrid: KPIStepTests.grid))
        let ends = BatchProcessor.InputEnds.known(["activity": Int64(records.filter { $0.topic == "activity" }.count),
                                                   "billing": Int64(records.filter { $0.topic == "billing" }.count)])
        for start in stride(from: 0, to: records.count, by: 7) {
            _ = try store.commit(Array(records[start..<min(start + 7, records.count)]), receivedAt: Instant(seconds: 0), inputEnds: ends)
        }
        let now = try #require(store.watermark.clock)
        let today = DayCalendar.utc.day(of: now)

        // Then each segment's counts today are its published changes with `as_of` today
        var entered: [String: Double] = [:], exited: [String: Double] = [:]
        for row in try store.outbox(after: 0, limit: 100_000) where row.topic == "membership" {
            let message = try JSONSerialization.jsonObject(with: Data(row.value)) as! [String: String]
            guard DayCalendar.utc.day(of: try RFC3339.parse(message["as_of"]!).get()) == today else { continue }
            if message["change"] == "enter" { entered[message["segment"]!, default: 0] += 1 } else { exited[message["segment"]!, default: 0] += 1 }
        }
        #expect(entered.values.reduce(0, +) + exited.values.reduce(0, +) > 0, "the last day has changes to count")
        let partials = store.partials.values
        for segment in ["inactive_new", "spenders"] {
            let value = { (kpi: String) in Self.catalog.value(of: KPIKey(segment: segment, kpi: kpi), in: partials, day: today) }
            #expect(value("entered_today") == entered[segment] ?? 0, "\(segment)")
            #expect(value("exited_today") == exited[segment] ?? 0, "\(segment)")
            let members = value("members") ?? 0
            #expect(value("volatility") == (members > 0 ? ((entered[segment] ?? 0) + (exited[segment] ?? 0)) / members : nil), "\(segment)")
        }
        // And a day's counts are dropped two days on: only today's and yesterday's are kept
        let kept = try store.db.prepare("SELECT DISTINCT kpi FROM kpi_partials WHERE kpi LIKE '%@%'")
        var days: Set<DayNumber> = []
        while try kept.step() { days.insert(SegmentVolatility.day(of: KPIKey(segment: "", kpi: kept.string(0)!))!) }
        #expect(days.isSubset(of: [today, today - 1]) && !days.isEmpty, "\(days) on \(today)")
    }

    @Test func theVolatilityChartsAndAlertsAreTheSameInACatchUp() throws {
        let alerts = [AlertDefinition(name: "flapping", segment: "spenders", kpi: "volatility", condition: .threshold(.greater, 0.5))]
        let live = try KPIStepTests.run(batchSize: 3, catalog: Self.catalog, alerts: alerts)
        #expect(live.series.contains { $0.hasPrefix("spenders/entered_today") } && live.series.contains { $0.hasPrefix("all/volatility") })
        #expect(live.days.contains { $0.hasPrefix("inactive_new/exited_today") })
        #expect(live.alerts.contains { $0.contains("flapping") && $0.contains("firing") }, "\(live.alerts)")
        for size in [50, 100_000] {
            let catchUp = try KPIStepTests.run(batchSize: size, catalog: Self.catalog, alerts: alerts)
            #expect(catchUp == live, "batches of \(size): \(Set(catchUp.series).symmetricDifference(live.series).sorted().prefix(6))")
        }
        // Off by default: no volatility KPI without the setting
        #expect(try !KPIStepTests.run(batchSize: 100_000).series.contains { $0.contains("entered_today") })
    }
}
