import Foundation
import Testing
@testable import SegmenterCore

/// The pure parts of reconciliation: schedules, the partitioner, the diff levels.
@Suite struct ReconciliationCoreTests {
    static func at(_ text: String) -> Instant { try! RFC3339.parse(text).get() }

    @Test(arguments: [
        ("*/15 * * * *", "2026-11-29T10:07:00Z", "UTC", "2026-11-29T10:15:00Z"),
        ("0 * * * *", "2026-11-29T10:00:00Z", "UTC", "2026-11-29T11:00:00Z"),
        ("30 2 * * *", "2026-11-29T03:00:00Z", "UTC", "2026-11-30T02:30:00Z"),
        ("0 9 * * 1-5", "2026-11-28T12:00:00Z", "UTC", "2026-11-30T09:00:00Z"),     // Saturday → Monday
        ("0 0 1 * *", "2026-11-29T00:00:00Z", "UTC", "2026-12-01T00:00:00Z"),
        ("0 0 29 2 *", "2026-03-01T00:00:00Z", "UTC", "2028-02-29T00:00:00Z"),      // leap day
        ("15 3 * * *", "2026-11-29T00:00:00Z", "Europe/Berlin", "2026-11-29T02:15:00Z"),  // 03:15 local = 02:15Z
        ("0 12 1 * 0", "2026-11-02T00:00:00Z", "UTC", "2026-11-08T12:00:00Z"),      // day 1 OR Sunday
    ])
    func cronNextRun(expression: String, after: String, zone: String, expected: String) throws {
        let cron = try CronExpression(expression)
        #expect(Schedule.cron(cron).next(after: Self.at(after), timeZone: TimeZone(identifier: zone)!) == Self.at(expected))
    }

    @Test func cronErrorsSayWhatIsWrong() {
        #expect(throws: CronExpression.ParseError.self) { try CronExpression("* * * *") }
        #expect(throws: CronExpression.ParseError.self) { try CronExpression("61 * * * *") }
        // A day no chosen month has never comes (issue 25): refused, with the reason.
        #expect { try CronExpression("0 0 31 2 *") } throws: { "\($0)".contains("can never fire") }
        #expect { try CronExpression("0 0 30,31 2 *") } throws: { "\($0)".contains("can never fire") }
        #expect(throws: Never.self) { try CronExpression("0 0 29 2 *") }  // leap years
        #expect(throws: Never.self) { try CronExpression("0 0 31 2 1") }  // any Monday in February
        #expect(throws: CronExpression.ParseError.self) { try CronExpression("*/0 * * * *") }
        #expect((try? CronExpression("0 25 * * *")) == nil)
    }

    @Test func everyAddsItsInterval() {
        #expect(Schedule.every(seconds: 3600).next(after: Self.at("2026-11-29T10:07:00Z"), timeZone: .gmt) == Self.at("2026-11-29T11:07:00Z"))
    }

    /// Reference values from Kafka's own `Utils.murmur2` tests.
    @Test(arguments: [("21", -973_932_308), ("foobar", -790_332_482), ("a-little-bit-long-string", -985_981_536),
                      ("a-little-bit-longer-string", -1_486_304_829), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
                      ("abc", 479_470_107)])
    func murmur2MatchesKafka(key: String, expected: Int32) {
        #expect(Int32(bitPattern: Partitioner.murmur2(Array(key.utf8))) == expected)
    }

    @Test func partitionsStayInRange() {
        for partitioner in Partitioner.allCases {
            for n in 0..<500 { #expect((0..<7).contains(partitioner.partition(of: "user-\(n)", count: 7))) }
        }
        #expect(Partitioner.crc32(Array("123456789".utf8)) == 0xCBF4_3926)  // the CRC-32 check value
    }

    @Test func diffLevels() {
        let a = DayAggregate(spendCents: 100, activities: 2, activeMicros: 5)
        // A row of zeros on one side and none on the other is no drift.
        #expect(ReconciliationDiff.corrections(local: ["u": DayAggregate()], warehouse: [:]).isEmpty)
        #expect(ReconciliationDiff.corrections(local: ["u": a], warehouse: [:]) == ["u": DayAggregate()])
        #expect(ReconciliationDiff.corrections(local: [:], warehouse: ["v": a]) == ["v": a])
        #expect(ReconciliationDiff.corrections(local: ["u": a], warehouse: ["u": a]).isEmpty)
        var totals = DayTotals()
        totals.add(a)
        totals.add(DayAggregate())
        #expect(totals == DayTotals(users: 1, spendCents: 100, activities: 2, activeMicros: 5))
        #expect(ReconciliationDiff.differingDays(in: 1...3, local: [1: totals], warehouse: [1: totals, 3: totals]) == [3])
        #expect(SignupBucket.bucket(ofEpochSeconds: -1) == -1 && SignupBucket.bucket(ofEpochSeconds: 86_399) == 0)
    }

    /// A warehouse correction sets values: lifetime totals move by each day's difference, a
    /// correction taken twice changes nothing the second time (a retried run cannot count twice).
    @Test func aCorrectionSetsTheWarehouseValuesOnceAndMovesLifetimesByTheDifference() {
        let metric = MetricKey(name: "uploads", definition: "count(upload)")
        let correction = UserCorrection(days: [20: DayAggregate(spendCents: 500, activities: 2), 21: DayAggregate(), 22: DayAggregate(activities: 1)],
                                        metrics: [MetricDayCorrection(day: 20, key: metric, total: 4)], signup: Self.at("2026-11-20T08:00:00Z"))
        var stored: [DayNumber: DayAggregate] = [20: DayAggregate(spendCents: 300, activities: 2), 21: DayAggregate(spendCents: 50), 22: DayAggregate(activities: 1)]
        var storedMetric: Int64 = 1
        var profile = UserProfile()
        profile.lifetimeSpendCents = 350
        profile.lifetimeActivities = 3
        profile.metrics.totals[metric, default: MetricTotals()].lifetime = 1
        let first = correction.take(into: &profile, storedDay: { stored[$0] ?? DayAggregate() }, storedMetric: { _ in storedMetric })
        #expect(first.days.map(\.day) == [20, 21], "day 22 already agrees")
        #expect(first.metrics.map(\.before) == [1] && first.signupChanged)
        #expect(profile.lifetimeSpendCents == 350 + 200 - 50 && profile.lifetimeActivities == 3)
        #expect(profile.metrics.totals[metric]?.lifetime == 4)
        #expect(profile.signupAt == Self.at("2026-11-20T08:00:00Z"))
        // Taken again once written: nothing differs, nothing moves.
        for change in first.days { stored[change.day] = change.after }
        storedMetric = 4
        let before = profile
        let second = correction.take(into: &profile, storedDay: { stored[$0] ?? DayAggregate() }, storedMetric: { _ in storedMetric })
        #expect(!second.changesProfile && profile == before)
    }
}
