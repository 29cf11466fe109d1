import Foundation
import SegmenterCore

extension KPIPublisher {
    func saveHistory(_ days: [(DayNumber, [KPIKey: Double])]) throws {
        let statement = try db.cached("INSERT OR REPLACE INTO kpi_history (segment, kpi, day, value_bits) VALUES (?, ?, ?, ?)")
        for (day, values) in days {
            for (key, value) in values {
                statement.reset()
                statement.bind(1, key.segment)
                statement.bind(2, key.kpi)
                statement.bind(3, Int64(day))
                statement.bind(4, Int64(bitPattern: value.bitPattern))
                try statement.run()
            }
        }
    }

    func saveAlerts(_ statuses: [String: AlertStatus], readings: [String: (value: Double?, baseline: Double?)],
                    drillDowns: [String: String]) throws {
        let statement = try db.cached("""
            INSERT OR REPLACE INTO alert_states (name, state, pending_since, value_bits, baseline_bits, drill_down)
            VALUES (?, ?, ?, ?, ?, ?)
            """)
        for (name, status) in statuses {
            statement.reset()
            statement.bind(1, name)
            statement.bind(2, status.state.rawValue)
            statement.bind(3, status.pendingSince?.nanoseconds)
            statement.bind(4, readings[name]?.value.map { Int64(bitPattern: $0.bitPattern) })
            statement.bind(5, readings[name]?.baseline.map { Int64(bitPattern: $0.bitPattern) })
            statement.bind(6, status.state == .firing ? drillDowns[name] : nil)
            try statement.run()
        }
    }

    func setMeta(_ key: String, _ value: Int64) throws {
        let statement = try db.cached("INSERT OR REPLACE INTO publisher_meta (key, value) VALUES (?, ?)")
        statement.bind(1, key)
        statement.bind(2, value)
        try statement.run()
    }

    /// Firing alerts survive a restart without re-firing: their state is read back here.
    func loadAlertState() throws {
        let states = try db.prepare("SELECT name, state, pending_since, drill_down FROM alert_states")
        while try states.step() {
            if let drill = states.string(3) { chain.drillDowns[states.string(0)!] = drill }
            chain.alertStatus[states.string(0)!] = AlertStatus(state: AlertStatus.State(rawValue: states.string(1) ?? "") ?? .resolved,
                                                         pendingSince: states.optionalInt64(2).map(Instant.init(nanoseconds:)))
        }
        let rows = try db.prepare("SELECT segment, kpi, day, value_bits FROM kpi_history")
        while try rows.step() {
            chain.history[KPIKey(segment: rows.string(0)!, kpi: rows.string(1)!), default: [:]][DayNumber(rows.int64(2))] =
                Double(bitPattern: UInt64(bitPattern: rows.int64(3)))
        }
        let meta = try db.prepare("SELECT value FROM publisher_meta WHERE key = 'current_day'")
        if try meta.step() { chain.currentDay = DayNumber(meta.int64(0)) }
        let folded = try db.prepare("SELECT value FROM publisher_meta WHERE key = 'folded_bucket'")
        if try folded.step() { chain.foldedBucket = folded.int64(0) }
    }
}
