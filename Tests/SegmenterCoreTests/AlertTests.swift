import Testing
@testable import SegmenterCore

/// Alert kinds, `for:`, `min_members` and hysteresis, as a pure state machine (issue 4).
@Suite struct AlertTests {
    let t0 = Instant(seconds: 1_780_000_000)
    func at(_ minutes: Int64) -> Instant { t0.adding(seconds: minutes * 60) }

    /// Feeds (minute, value) steps and returns the published transitions as (minute, state).
    func run(_ alert: AlertDefinition, _ steps: [(Int64, Double?)], baseline: Double? = nil, members: Int64 = 100) -> [(Int64, AlertStatus.State)] {
        var status = AlertStatus()
        var published: [(Int64, AlertStatus.State)] = []
        for (minute, value) in steps {
            let (next, change) = alert.step(status, value: value, baseline: baseline, members: members, now: at(minute))
            status = next
            if let change { published.append((minute, change)) }
        }
        return published
    }

    @Test func thresholdFiresOnlyAfterForAndResolvesWithHysteresis() {
        let alert = AlertDefinition(name: "zero", segment: "new", kpi: "zero_share", condition: .threshold(.greater, 0.9),
                                    forSeconds: 600, resolveAt: 0.8)
        let transitions = run(alert, [
            (0, 0.5), (1, 0.95), (5, 0.97),   // condition holds from minute 1 …
            (10, 0.96),                        // … only 9 minutes: not yet
            (11, 0.99),                        // 10 minutes: fires, once
            (12, 0.99), (13, 0.85),            // below the threshold but above resolve_at: still firing (no flap)
            (14, 0.91), (15, 0.79),            // resolves at 0.79 <= 0.8, once
            (16, 0.95),                        // a new episode starts the for: timer again
            (20, 0.5), (30, 0.95),             // the timer restarts after the condition broke
        ])
        #expect(transitions.map(\.0) == [11, 15])
        #expect(transitions.map(\.1) == [.firing, .resolved])
    }

    @Test func dropAndRiseCompareWithTheBaseline() {
        let drop = AlertDefinition(name: "minutes", segment: "all", kpi: "avg_minutes", condition: .drop(percent: 30), resolveAt: 10)
        // baseline 20: fires at <= 14, resolves above 18.
        #expect(run(drop, [(0, 15), (1, 14), (2, 16), (3, 17.9), (4, 18.5)], baseline: 20).map(\.0) == [1, 4])
        let rise = AlertDefinition(name: "refunds", segment: "all", kpi: "refund_share", condition: .rise(percent: 50))
        // baseline 0.1: fires at >= 0.15, resolves below 0.15.
        #expect(run(rise, [(0, 0.12), (1, 0.15), (2, 0.149)], baseline: 0.1).map(\.1) == [.firing, .resolved])
        // No baseline yet: nothing happens.
        #expect(run(drop, [(0, 1), (1, 0)], baseline: nil).isEmpty)
    }

    @Test func tooFewMembersOrANullValueNeitherFireNorResolve() {
        let alert = AlertDefinition(name: "a", segment: "s", kpi: "k", condition: .threshold(.less, 1.5), minMembers: 50)
        #expect(run(alert, [(0, 1.0), (1, 0.5)], members: 10).isEmpty)
        #expect(run(alert, [(0, 1.0), (1, nil), (2, 2.0)], members: 50).map(\.1) == [.firing, .resolved])
        var status = AlertStatus(state: .firing)
        (status, _) = alert.step(status, value: nil, baseline: nil, members: 50, now: at(0))
        #expect(status.state == .firing)  // a null value does not resolve
    }

    @Test func baselinesAverageEndOfDayValues() {
        let history: [DayNumber: Double] = [100: 10, 101: 20, 102: 30, 93: 7, 86: 9, 103: 1000]
        #expect(AlertDefinition.Baseline(count: 3).value(history: history, today: 103) == 20)   // days 100…102, not today
        #expect(AlertDefinition.Baseline(count: 2, sameWeekday: true).value(history: history, today: 100) == 8)  // days 93, 86
        #expect(AlertDefinition.Baseline(count: 3).value(history: [:], today: 103) == nil)
        #expect(AlertDefinition.Baseline(count: 5).value(history: history, today: 103) == 20)  // missing days are skipped
    }
}
