import DevTools
import Foundation
import SegmenterCore
import SegmenterService
import SegmenterStore
import SQLite
import ServiceConfig

/// The demo's local SQLite warehouse: the truth about the generated stream, per user and day,
/// plus refunds issued in the billing system that never reached the billing topic, and logins
/// (from a client that does not report to Kafka) only the warehouse saw. The demo's
/// reconciliation finds exactly those.
enum DemoWarehouse {
    struct Corrections {
        var refunds: [(user: String, day: DayNumber, cents: Int64)] = []
        var logins: [(user: String, day: DayNumber, count: Int64)] = []
    }

    static let dailySQL = "SELECT user_id, day, spend, activities, active_seconds FROM daily_user_stats"
    static let signupsSQL = "SELECT user_id, signup_at FROM signups"
    static let metricsSQL = "SELECT user_id, day, metric, value FROM daily_metrics"

    /// Writes `path` from the valid, distinct generated events; refunds $300 for users whose
    /// 30-day spend is just over $500, three days before the last day.
    static func write(_ messages: [EventGenerator.Message], config: SegmenterConfig, path: String, refunds: Int = 25) throws -> Corrections {
        let decoder = config.decoder
        var seen: Set<String> = []
        var daily: [String: [DayNumber: DayAggregate]] = [:]
        var signups: [String: Instant] = [:]
        var lastDay: DayNumber = 0
        // Counts and sums per user, day and metric (what metrics_sql compares), in stored units.
        let metrics = config.catalog.metrics
        var metricDays: [String: [DayNumber: [MetricKey: Int64]]] = [:]
        for message in messages where message.valid {
            guard case let .success(event) = decoder.decode(Array(message.payload.utf8), from: message.topic, wallClock: message.ts),
                  seen.insert(event.userID + "\u{0}" + event.eventID).inserted else { continue }
            let day = config.calendar.day(of: event.ts)
            lastDay = max(lastDay, day)
            var state = UserMetrics()
            for write in metrics.apply(event, to: &state, calendar: config.calendar) where write.delta != 0 {
                metricDays[event.userID, default: [:]][write.day, default: [:]][write.key, default: 0] += write.delta
            }
            switch event.body {
            case let .activity(_, micros): daily[event.userID, default: [:]][day, default: DayAggregate()] += DayAggregate(activities: 1, activeMicros: micros)
            case let .billing(cents): daily[event.userID, default: [:]][day, default: DayAggregate()] += DayAggregate(spendCents: cents)
            case .signup: signups[event.userID] = min(signups[event.userID] ?? event.ts, event.ts)
            default: break
            }
        }
        var corrections = Corrections()
        let refundDay = lastDay - 3
        for (user, days) in daily.sorted(by: { $0.key < $1.key }) where corrections.refunds.count < refunds {
            let spend = days.values.reduce(0) { $0 + $1.spendCents }
            guard (50_001...80_000).contains(spend) else { continue }
            daily[user]![refundDay, default: DayAggregate()].spendCents -= 30_000
            corrections.refunds.append((user, refundDay, 30_000))
        }

        if let logins = metrics.refs["logins"] {
            for (user, days) in metricDays.sorted(by: { $0.key < $1.key }) where corrections.logins.count < refunds {
                guard let count = days[refundDay - 1]?[logins.key], count >= 1 else { continue }
                metricDays[user]![refundDay - 1]![logins.key] = count + 2
                corrections.logins.append((user, refundDay - 1, 2))
            }
        }

        try? FileManager.default.removeItem(atPath: path)
        let db = try SQLiteConnection(path: path)
        try db.execute("""
            CREATE TABLE daily_user_stats (user_id TEXT NOT NULL, day TEXT NOT NULL, spend NUMERIC NOT NULL,
                                           activities INTEGER NOT NULL, active_seconds REAL NOT NULL, PRIMARY KEY (user_id, day));
            CREATE TABLE signups (user_id TEXT PRIMARY KEY, signup_at TEXT NOT NULL);
            CREATE TABLE daily_metrics (user_id TEXT NOT NULL, day TEXT NOT NULL, metric TEXT NOT NULL, value NUMERIC NOT NULL,
                                        PRIMARY KEY (user_id, day, metric));
            """)
        try db.transaction {
            let insert = try db.prepare("INSERT INTO daily_user_stats VALUES (?, ?, CAST(? AS NUMERIC), ?, ?)")
            for (user, days) in daily {
                for (day, sums) in days {
                    insert.reset()
                    insert.bind(1, user)
                    insert.bind(2, DayCalendar.isoDate(day))
                    insert.bind(3, Money.format(cents: sums.spendCents))
                    insert.bind(4, sums.activities)
                    insert.bind(5, String(Double(sums.activeMicros) / 1e6))
                    try insert.run()
                }
            }
            let metric = try db.prepare("INSERT INTO daily_metrics VALUES (?, ?, ?, CAST(? AS NUMERIC))")
            for definition in metrics.metrics where MetricReconciliation.isCorrected(definition.shape) {
                let unit = MetricReconciliation.millionthsPerUnit(definition.shape)
                for (user, days) in metricDays {
                    for (day, totals) in days {
                        guard let total = totals[definition.key], total != 0 else { continue }
                        metric.reset()
                        metric.bind(1, user)
                        metric.bind(2, DayCalendar.isoDate(day))
                        metric.bind(3, definition.name)
                        metric.bind(4, String(Double(total * unit) / 1e6))
                        try metric.run()
                    }
                }
            }
            let signup = try db.prepare("INSERT INTO signups VALUES (?, ?)")
            for (user, at) in signups {
                signup.reset()
                signup.bind(1, user)
                signup.bind(2, at.description)
                try signup.run()
            }
        }
        return corrections
    }
}
