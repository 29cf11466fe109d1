import Foundation
import Testing
@testable import SegmenterCore
@testable import SegmenterStore
import SQLite
import DevTools

/// SPEC §7: the KPI series (`/api/history`), the alerts and the days' ends follow the history:
/// a catch-up over a backlog charts the same values and fires the same alerts, at the same event
/// times, as live processing did. Real SQLite: a partition store and the KPI publisher in its
/// database, stepped by the KPI leader's fold (`PartialsFold`) on the grid.
@Suite struct KPIStepTests {
    static let catalog = SegmentCatalog(
        segments: [
            try! SegmentDefinition(name: "inactive_new", ruleText: "hours_since_signup >= 24 and activities_since_signup = 0"),
            try! SegmentDefinition(name: "spenders", ruleText: "spend(2d) > 40"),
        ],
        kpis: [try! KPIDefinition(name: "zero", kind: .share, expressionText: "activities_since_signup = 0", segments: nil),
               try! KPIDefinition(name: "spend", kind: .sum, expressionText: "spend(2d)", segments: nil)])
    static let alerts = [
        AlertDefinition(name: "many_inactive", segment: "inactive_new", kpi: "members", condition: .threshold(.greaterOrEqual, 3),
                        forSeconds: 1800),
        AlertDefinition(name: "zero_rise", segment: "all", kpi: "zero", condition: .rise(percent: 40), baseline: .init(count: 2)),
    ]
    static let grid = KPIGrid(seconds: 300)
    static let start = Instant(seconds: 1_793_520_000)  // 2026-11-01

    /// Five days: users sign up every few hours; most become active within a day, some never;
    /// charges come and go out of the 2-day window.
    static func records() -> [DecodedRecord] {
        var rng = SplitMix64(seed: 7)
        var payloads: [(String, Instant, String)] = []
        for n in 0..<40 {
            let signup = start.adding(seconds: Int64(n) * 3 * 3600 + Int64(rng.next() % 3600))
            payloads.append(("activity", signup, #"{"event_id":"s\#(n)","user_id":"u\#(n)","type":"signup","ts":"\#(signup)"}"#))
            if n % 4 != 0 {
                let active = signup.adding(seconds: Int64(rng.next() % (20 * 3600)))
                payloads.append(("activity", active, #"{"event_id":"a\#(n)","user_id":"u\#(n)","type":"session","ts":"\#(active)"}"#))
            }
            let paid = signup.adding(seconds: Int64(rng.next() % (30 * 3600)))
            payloads.append(("billing", paid, #"{"event_id":"c\#(n)","user_id":"u\#(n)","ts":"\#(paid)","type":"charge","amount":\#(rng.next() % 60 + 1),"currency":"USD"}"#))
        }
        payloads.sort { $0.1 < $1.1 }
        var offsets = ["activity": Int64(0), "billing": 0]
        return payloads.map { topic, _, payload in
            defer { offsets[topic]! += 1 }
            let bytes = Array(payload.utf8)
            return DecodedRecord(topic: topic, partition: 0, offset: offsets[topic]!, key: nil, payload: bytes,
                                 decoded: EventDecoder().decode(bytes, from: topic == "billing" ? .billing : .activity,
                                                                wallClock: Instant(seconds: 4_000_000_000)))
        }
    }

    struct Outputs: Equatable {
        var series: [String] = []
        var alerts: [String] = []
        var days: [String] = []
    }

    /// Feeds `records` in batches of `size` and, after each batch, lets the leader publish up to
    /// the pair's watermark, as the service's emit loop does.
    static func run(batchSize size: Int, records: [DecodedRecord] = records(), catalog: SegmentCatalog = catalog,
                    alerts: [AlertDefinition] = alerts, grid: KPIGrid = grid, drillDown: DrillDownSource? = nil) throws -> Outputs {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("steps-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try PartitionStore(directory: directory, partition: 0, calendar: .utc,
                                       segments: SegmentSetup(catalog: catalog, membershipTopic: "membership", kpiGrid: grid))
        let publisher = try KPIPublisher(store: store, topic: "kpis")
        let ends = BatchProcessor.InputEnds.known(["activity": Int64(records.filter { $0.topic == "activity" }.count),
                                                   "billing": Int64(records.filter { $0.topic == "billing" }.count)])
        for start in stride(from: 0, to: records.count, by: size) {
            _ = try store.commit(Array(records[start..<min(start + size, records.count)]), receivedAt: Instant(seconds: 0), inputEnds: ends)
            guard let now = store.watermark.clock else { continue }
            let last = grid.lastComplete(at: now)
            let (steps, _) = PartialsFold.steps(after: publisher.foldedBucket, through: last, partitions: [store.partialsTimeline(after: publisher.foldedBucket)])
            func publish() throws {
                try publisher.publish(steps, through: last, current: store.partials.values, now: now, grid: grid, catalog: catalog, causes: [:],
                                      alerts: alerts, alertTopic: "alerts", drillDown: drillDown.map { source in { try source.entries($0, $1) } })
            }
            guard let drillDown else { try publish(); continue }
            func written() throws -> String {
                let rows = try store.db.prepare("SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM kpi_series), (SELECT count(*) FROM alert_states)")
                _ = try rows.step()
                return "outbox \(rows.int64(0)), series \(rows.int64(1)), alert states \(rows.int64(2)), folded \(publisher.foldedBucket ?? -1), \(publisher.alertStatus)"
            }
            let before = try written()
            do { try publish() } catch is DrillDownSource.NotYet {
                // The emit abandoned at a firing alert's drill-down wrote nothing, and its chain is as stored…
                drillDown.abandoned.append((before, try written()))
                // …so it is taken again.
                try publish()
            }
            if let folded = publisher.foldedBucket { store.forgetBuckets(through: folded) }
        }
        var outputs = Outputs()
        let series = try store.db.prepare("SELECT segment, kpi, bucket, at, value_bits FROM kpi_series ORDER BY segment, kpi, bucket")
        while try series.step() {
            let value = series.isNull(4) ? "null" : "\(Double(bitPattern: UInt64(bitPattern: series.int64(4))))"
            outputs.series.append("\(series.string(0)!)/\(series.string(1)!) \(Instant(nanoseconds: series.int64(3))) \(value)")
        }
        outputs.alerts = try store.outbox(after: 0, limit: 100_000).filter { $0.topic == "alerts" }.map { String(decoding: $0.value, as: UTF8.self) }
        let days = try store.db.prepare("SELECT segment, kpi, day, value_bits FROM kpi_history ORDER BY segment, kpi, day")
        while try days.step() {
            outputs.days.append("\(days.string(0)!)/\(days.string(1)!) \(days.int64(2)) \(Double(bitPattern: UInt64(bitPattern: days.int64(3))))")
        }
        return outputs
    }

    /// A firing alert's drill-down: a fixed ranking, except that with `notAtFirstAsk` each
    /// firing's first ask throws, as the service's does while the other instances are asked.
    final class DrillDownSource {
        struct NotYet: Error {}
        let notAtFirstAsk: Bool
        var asked = 0
        /// What was written before and after each abandoned emit.
        var abandoned: [(before: String, after: String)] = []
        init(notAtFirstAsk: Bool) { self.notAtFirstAsk = notAtFirstAsk }
        func entries(_ alert: AlertDefinition, _ baseline: Double) throws -> [DrillDownEntry] {
            asked += 1
            if notAtFirstAsk && asked % 2 == 1 { throw NotYet() }
            return [DrillDownEntry(dimension: "signup_week", group: "2026-10-26", members: 7, value: 0.9, contribution: 0.2)]
        }
    }

    @Test func aCatchUpChartsAndAlertsAsLiveProcessingDid() throws {
        // Given the charts, alerts and days' ends of the input consumed live (a few events per batch)
        let live = try Self.run(batchSize: 3)
        #expect(live.series.count > 50 && live.alerts.contains { $0.contains("\"firing\"") } && live.days.count >= 6, "\(live)")
        // When the same input is consumed in a catch-up: large batches, or all at once
        for size in [50, 100_000] {
            let catchUp = try Self.run(batchSize: size)
            // Then every charted value, alert change and day's end is the same, at the same event time
            #expect(catchUp.series == live.series, "batches of \(size): \(Set(catchUp.series).symmetricDifference(live.series).sorted().prefix(6))")
            #expect(catchUp.alerts == live.alerts, "batches of \(size): \(catchUp.alerts) vs \(live.alerts)")
            #expect(catchUp.days == live.days, "batches of \(size): \(catchUp.days) vs \(live.days)")
        }
    }

    /// The demo's incident (everyone who signs up from day 20 stays inactive until day 26), with
    /// the demo's segments and alerts at the default grid: `incident_cohort_inactive` fires and
    /// resolves at the same event times consumed as a catch-up as streamed.
    /// The demo's incident: everyone who signs up from day 20 stays inactive until day 26.
    static func incident() throws -> (records: [DecodedRecord], catalog: SegmentCatalog, alerts: [AlertDefinition]) {
        var options = EventGenerator.Options()
        options.users = 400
        options.events = 12_000
        options.start = Instant(seconds: 1_790_000_000 / 86_400 * 86_400)
        let incidentDay = options.start.epochSeconds / 86_400 + 20
        options.incidentSignupsFrom = Instant(seconds: incidentDay * 86_400)
        options.incidentUntil = Instant(seconds: (incidentDay + 6) * 86_400)
        var offsets = ["activity": Int64(0), "billing": 0]
        let records = EventGenerator(options: options).messages().map { message in
            let topic = message.topic.rawValue
            defer { offsets[topic]! += 1 }
            let bytes = Array(message.payload.utf8)
            return DecodedRecord(topic: topic, partition: 0, offset: offsets[topic]!, key: nil, payload: bytes,
                                 decoded: EventDecoder().decode(bytes, from: message.topic, wallClock: Instant(seconds: 4_000_000_000)))
        }
        let catalog = SegmentCatalog(
            segments: [try SegmentDefinition(name: "signed_up_after_incident", ruleText: "signup_date >= date('\(DayCalendar.isoDate(DayNumber(incidentDay)))')"),
                       try SegmentDefinition(name: "inactive_new_users", ruleText: "hours_since_signup >= 24 and activities_since_signup = 0")],
            kpis: [try KPIDefinition(name: "zero_activity_share", kind: .share, expressionText: "activities_since_signup = 0", segments: nil)])
        let alerts = [
            AlertDefinition(name: "incident_cohort_inactive", segment: "signed_up_after_incident", kpi: "zero_activity_share",
                            condition: .threshold(.greater, 0.9), forSeconds: 6 * 3600, minMembers: 20, resolveAt: 0.5),
            AlertDefinition(name: "inactive_share_rise", segment: "all", kpi: "zero_activity_share", condition: .rise(percent: 100),
                            baseline: .init(count: 3), forSeconds: 2 * 3600, minMembers: 100),
        ]
        return (records, catalog, alerts)
    }

    @Test func theDemosIncidentAlertsAtTheSameInstantsInACatchUpAsStreamed() throws {
        let (records, catalog, alerts) = try Self.incident()
        let streamed = try Self.run(batchSize: 20, records: records, catalog: catalog, alerts: alerts, grid: .default)
        #expect(streamed.alerts.contains { $0.contains("incident_cohort_inactive") && $0.contains("firing") }, "\(streamed.alerts)")
        let catchUp = try Self.run(batchSize: records.count, records: records, catalog: catalog, alerts: alerts, grid: .default)
        #expect(catchUp.alerts == streamed.alerts)
        #expect(catchUp.series == streamed.series)
    }

    /// A drill-down the KPI step cannot have yet (the service gathers the other instances' half
    /// off the commit thread) ends the emit with nothing written, and the chain as stored; the
    /// emit taken again writes what an emit that had the answer at once writes.
    @Test func anEmitAbandonedAtADrillDownWritesNothingAndTheRetryWritesTheSame() throws {
        let (records, catalog, alerts) = try Self.incident()
        for size in [20, records.count] {
            let atOnce = DrillDownSource(notAtFirstAsk: false), later = DrillDownSource(notAtFirstAsk: true)
            let expected = try Self.run(batchSize: size, records: records, catalog: catalog, alerts: alerts, grid: .default, drillDown: atOnce)
            #expect(expected.alerts.contains { $0.contains("inactive_share_rise") && $0.contains("\"firing\"") && $0.contains("2026-10-26") },
                    "batches of \(size): \(expected.alerts)")
            let retried = try Self.run(batchSize: size, records: records, catalog: catalog, alerts: alerts, grid: .default, drillDown: later)
            #expect(later.asked == 2 * atOnce.asked && !later.abandoned.isEmpty, "batches of \(size): asked \(later.asked) vs \(atOnce.asked)")
            for (before, after) in later.abandoned { #expect(after == before, "batches of \(size): an abandoned emit wrote") }
            // Then the same charts, alerts (with their drill-downs) and days' ends…
            #expect(retried.alerts == expected.alerts)
            #expect(retried.series == expected.series)
            #expect(retried.days == expected.days)
        }
    }
}
