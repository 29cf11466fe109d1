import Foundation
import Testing
import SegmenterCore
import SegmenterService
import ServiceConfig
import SegmenterTestKit

/// SPEC §7 end to end, separate processes and a real broker: the published membership history
/// equals what a consumer applying one record at a time publishes (`ReferenceConsumer`), folded
/// at every local midnight, and exactly message by message for a catch-up; a user who signs up
/// and stays silent enters `inactive_new_users` at sign-up + 24 h, by time, in every run.
@Suite(.serialized) struct HistoryEndToEndTests {
    /// The catch-up: all input is in Kafka before `run` starts (a first deployment, a restart
    /// after downtime), consumed in batches of 500.
    @Test func aCatchUpPublishesTheOneRecordAtATimeHistory() throws {
        let harness = try Harness()
        let startDay = DayNumber(Int64(Date().timeIntervalSince1970) / 86_400) - 15
        let incident = DayCalendar.isoDate(startDay + 7)
        let produced = try harness.generate(["--users", "300", "--events", "20000", "--days", "12", "--start", DayCalendar.isoDate(startDay),
                                             "--incident-after", incident, "--invalid-rate", "0.01", "--duplicate-rate", "0.02", "--seed", "41"])
        let yaml = SegmentOutputsTests.segmentsYAML(lateCohort: incident)
        let config = try harness.writeConfig(batch: 500, extra: yaml)
        try harness.runToCompletion(config: config, total: produced.total)

        let history = try HistoryCheck(harness: harness, yaml: yaml)
        history.expectSameHistory(exactly: true)
        history.expectSilentSignupsEnterByTime(days: 3)
    }
}

/// The published history beside the reference's, for one run's topics.
struct HistoryCheck {
    let expected: [ReferenceConsumer.Change]
    let published: [ReferenceConsumer.Change]
    let events: [UserEvent]
    let calendar: DayCalendar

    /// Reads the input topics back from the broker (partition, offset, produce time, payload), feeds
    /// each partition pair's records to a `ReferenceConsumer` in the order they were produced
    /// (each topic in offset order), and reads `segment-membership`.
    /// - Parameter phases: instants at which the test had let the service read everything
    ///   produced before and then produced more: until such an instant the reference knows the
    ///   topics to end where they did then (a topic read to its end no longer holds the pair back).
    init(harness: Harness, yaml: String, phases: [Date] = []) throws {
        let config = try SegmenterConfig.parse(yaml: yaml, source: "test", environment: [:])
        calendar = config.calendar
        let decoder = EventDecoder(currency: "USD", fxRates: ["EUR": ExchangeRate("1.08")!])
        let wallClock = Instant(seconds: Int64(Date().timeIntervalSince1970))
        var pairs: [Int32: [(topic: String, offset: Int64, time: Int64, event: UserEvent?)]] = [:]
        var all: [UserEvent] = []
        for topic in ["activity", "billing"] {
            for line in try harness.readRaw(topic) {
                let event = try? decoder.decode(Array(line.payload.utf8), from: topic == "billing" ? .billing : .activity, wallClock: wallClock).get()
                pairs[line.partition, default: []].append((topic, line.offset, line.timestamp, event))
                if let event { all.append(event) }
            }
        }
        events = all
        var expected: [ReferenceConsumer.Change] = []
        for (_, records) in pairs {
            var ends: [String: Int64] = [:]
            for record in records { ends[record.topic] = max(ends[record.topic] ?? 0, record.offset + 1) }
            // Each topic in offset order, the two merged by produce time.
            var queues = ["activity", "billing"].map { topic in records.filter { $0.topic == topic }.sorted { $0.offset < $1.offset } }
            var arrival: [(topic: String, offset: Int64, time: Int64, event: UserEvent?)] = []
            while let next = queues.indices.filter({ !queues[$0].isEmpty }).min(by: { queues[$0][0].time < queues[$1][0].time }) {
                arrival.append(queues[next].removeFirst())
            }
            let boundaries = phases.map { Int64($0.timeIntervalSince1970 * 1000) }
            func known(before boundary: Int64?) -> [String: Int64] {
                var known = ends
                if let boundary {
                    for topic in known.keys {
                        known[topic] = records.filter { $0.topic == topic && $0.time < boundary }.map { $0.offset + 1 }.max() ?? 0
                    }
                }
                return known
            }
            var reference = ReferenceConsumer(catalog: config.catalog, calendar: config.calendar,
                                              horizonSeconds: DedupeHorizon(longestWindowDays: config.catalog.longestWindow).seconds,
                                              crossings: [(.signup, 24)], ends: known(before: boundaries.first))
            for record in arrival {
                reference.ends = known(before: boundaries.first { record.time < $0 })
                reference.consume(topic: record.topic, offset: record.offset, event: record.event)
            }
            expected += reference.published
        }
        self.expected = expected
        published = try harness.readRaw("segment-membership").compactMap { ReferenceConsumer.Change(message: Array($0.payload.utf8)) }
    }

    /// Folded at every local midnight (and, with `exactly`, message by message per user and
    /// segment) the published history is the reference's.
    func expectSameHistory(exactly: Bool) {
        #expect(!expected.isEmpty && expected.contains { $0.cause == .time } && expected.contains { $0.cause == .event })
        let instants = (expected + published).map(\.asOf)
        guard let first = instants.min(), let last = instants.max() else { return }
        let midnights = (calendar.day(of: first)...calendar.day(of: last) + 1).map { calendar.start(of: $0) }
        let want = expected.members(at: midnights), got = published.members(at: midnights)
        var differing: [String] = []
        for midnight in midnights where want[midnight] != got[midnight] {
            let missing = want[midnight]!.subtracting(got[midnight]!), extra = got[midnight]!.subtracting(want[midnight]!)
            differing.append("\(midnight): \(missing.count) missing (\(missing.sorted().prefix(3))), \(extra.count) extra (\(extra.sorted().prefix(3)))")
        }
        #expect(differing.isEmpty, "membership at local midnights differs from the reference: \(differing.prefix(5))")
        if exactly {
            let wantPairs = expected.byUserAndSegment, gotPairs = published.byUserAndSegment
            let wrong = Set(wantPairs.keys).union(gotPairs.keys).sorted().filter { wantPairs[$0] != gotPairs[$0] }
            let first = wrong.first.map { "\($0)\n  reference: \(wantPairs[$0] ?? [])\n  published: \(gotPairs[$0] ?? [])" } ?? ""
            #expect(wrong.isEmpty, "\(wrong.count) of \(wantPairs.count) (user, segment) histories differ; first: \(first)")
        }
    }

    /// Every user who signed up and had no activity for `days` days after it entered
    /// `inactive_new_users` at sign-up + 24 h, by time (SPEC §7, §8).
    func expectSilentSignupsEnterByTime(days: Int64) {
        let last = events.map(\.ts).max()!
        var signups: [String: Instant] = [:]
        var activity: [String: [Instant]] = [:]
        for event in events {
            switch event.body {
            case .signup: signups[event.userID] = min(signups[event.userID] ?? event.ts, event.ts)
            case .activity: activity[event.userID, default: []].append(event.ts)
            default: break
            }
        }
        let silent = signups.filter { user, at in
            at.adding(seconds: days * 86_400) <= last && !(activity[user] ?? []).contains { $0 >= at && $0 < at.adding(seconds: days * 86_400) }
        }
        #expect(silent.count >= 10, "the input should hold users silent for \(days) days after signing up: \(silent.count)")
        let entries = Set(published.filter { $0.segment == "inactive_new_users" && $0.entered }.map { "\($0.userID) \($0.asOf) \($0.cause.rawValue)" })
        let wrong = silent.filter { !entries.contains("\($0.key) \($0.value.adding(seconds: 86_400)) time") }.keys.sorted()
        let examples = wrong.prefix(3).map { user in
            "\(user) (signed up \(signups[user]!)): " + published.filter { $0.userID == user }.map(\.description).joined(separator: "; ")
        }
        #expect(wrong.isEmpty, "\(wrong.count) of \(silent.count) silent users did not enter inactive_new_users at sign-up + 24 h by time: \(examples)")
    }
}
