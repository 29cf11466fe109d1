/// An alert on one KPI of one segment (SPEC §4, issue 4).
public struct AlertDefinition: Sendable, Equatable {
    public enum Condition: Sendable, Equatable {
        /// `value OP limit`, e.g. `zero_activity_share > 0.9`.
        case threshold(BinaryOperator, Double)
        /// The value fell by at least this percentage below the baseline.
        case drop(percent: Double)
        /// The value rose by at least this percentage above the baseline.
        case rise(percent: Double)
    }

    /// How the baseline of `drop`/`rise` is computed from end-of-day values.
    public struct Baseline: Sendable, Equatable {
        /// Days (or, with `sameWeekday`, weeks) of history to average.
        public var count: Int
        /// Average the same weekday of the previous `count` weeks (weekly seasonality).
        public var sameWeekday: Bool
        public init(count: Int = 7, sameWeekday: Bool = false) {
            self.count = count
            self.sameWeekday = sameWeekday
        }
    }

    public let name: String
    public let segment: String
    public let kpi: String
    public let condition: Condition
    public let baseline: Baseline
    /// How long (service clock) the condition must hold before firing.
    public let forSeconds: Int64
    /// Below this many members the alert is not evaluated (too few users to mean anything).
    public let minMembers: Int64
    /// Hysteresis: the level the value must get back to before a firing alert resolves. For a
    /// threshold, a value; for drop/rise, a percentage off the baseline. Nil: the firing level.
    public let resolveAt: Double?
    /// How urgent a firing is, for whoever routes it (Alertmanager's `severity` label).
    public let severity: String

    public init(name: String, segment: String, kpi: String, condition: Condition, baseline: Baseline = Baseline(),
                forSeconds: Int64 = 0, minMembers: Int64 = 0, resolveAt: Double? = nil, severity: String = "warning") {
        self.name = name
        self.segment = segment
        self.kpi = kpi
        self.condition = condition
        self.baseline = baseline
        self.forSeconds = forSeconds
        self.minMembers = minMembers
        self.resolveAt = resolveAt
        self.severity = severity
    }

    /// `> 0.9`, `drop 30% vs the mean of 7 days`: for `validate` and `inspect alerts`.
    public var conditionDescription: String {
        let baselineText = "vs the mean of \(baseline.count) \(baseline.sameWeekday ? "same weekdays" : "days")"
        switch condition {
        case let .threshold(op, limit): return "\(op.rawValue) \(JSONText.number(limit))"
        case let .drop(percent): return "drop \(JSONText.number(percent))% \(baselineText)"
        case let .rise(percent): return "rise \(JSONText.number(percent))% \(baselineText)"
        }
    }

    /// The level at which the alert fires, for messages: the threshold, or the baseline moved by the percentage.
    public func firingLevel(baseline: Double?) -> Double? {
        switch condition {
        case let .threshold(_, limit): return limit
        case let .drop(percent): return baseline.map { $0 * (1 - percent / 100) }
        case let .rise(percent): return baseline.map { $0 * (1 + percent / 100) }
        }
    }
}

/// Where an alert stands. Only `firing`/`resolved` are published; `pendingSince` is the
/// `for:` timer.
public struct AlertStatus: Sendable, Equatable {
    public enum State: String, Sendable { case firing, resolved }
    public var state: State = .resolved
    public var pendingSince: Instant?
    public init(state: State = .resolved, pendingSince: Instant? = nil) {
        self.state = state
        self.pendingSince = pendingSince
    }
}

extension AlertDefinition {
    /// One evaluation at `now`. Pure: the caller supplies the KPI value, its baseline and the
    /// segment's member count. Returns the new status and, if the state changed, the new state.
    ///
    /// - Fires when the condition has held continuously for `forSeconds`.
    /// - Resolves (no `for:`) once the value is back past `resolveAt` (or the firing level), so
    ///   a value hovering at the threshold does not flap.
    /// - With too few members, no value or no baseline, nothing changes: absence of evidence
    ///   neither fires nor resolves.
    public func step(_ status: AlertStatus, value: Double?, baseline: Double?, members: Int64,
                     now: Instant) -> (AlertStatus, AlertStatus.State?) {
        guard members >= minMembers, let value, let firing = isFiringCondition(value: value, baseline: baseline) else {
            return (status, nil)
        }
        var next = status
        switch status.state {
        case .resolved:
            guard firing else {
                next.pendingSince = nil
                return (next, nil)
            }
            let since = status.pendingSince ?? now
            next.pendingSince = since
            if now.nanoseconds - since.nanoseconds >= forSeconds * Instant.nanosPerSecond {
                next.state = .firing
                next.pendingSince = nil
                return (next, .firing)
            }
            return (next, nil)
        case .firing:
            guard isRecovered(value: value, baseline: baseline) == true else { return (next, nil) }
            next.state = .resolved
            next.pendingSince = nil
            return (next, .resolved)
        }
    }

    func isFiringCondition(value: Double, baseline: Double?) -> Bool? {
        switch condition {
        case let .threshold(op, limit): return compare(value, op, limit)
        case let .drop(percent):
            guard let baseline, baseline != 0 else { return nil }
            return value <= baseline * (1 - percent / 100) + tolerance(baseline)
        case let .rise(percent):
            guard let baseline, baseline != 0 else { return nil }
            return value >= baseline * (1 + percent / 100) - tolerance(baseline)
        }
    }

    /// Levels computed from a baseline carry float noise (0.1 × 1.5 = 0.15000000000000002).
    private func tolerance(_ baseline: Double) -> Double { abs(baseline) * 1e-9 }

    func isRecovered(value: Double, baseline: Double?) -> Bool? {
        switch condition {
        case let .threshold(op, limit):
            guard let level = resolveAt else { return !compare(value, op, limit) }
            // Back on the far side of the recovery level, in the direction away from firing.
            switch op {
            case .less, .lessOrEqual: return value >= level
            case .greater, .greaterOrEqual: return value <= level
            default: return !compare(value, op, level)
            }
        case let .drop(percent):
            guard let baseline, baseline != 0 else { return nil }
            return value > baseline * (1 - (resolveAt ?? percent) / 100) + tolerance(baseline)
        case let .rise(percent):
            guard let baseline, baseline != 0 else { return nil }
            return value < baseline * (1 + (resolveAt ?? percent) / 100) - tolerance(baseline)
        }
    }

    private func compare(_ a: Double, _ op: BinaryOperator, _ b: Double) -> Bool {
        switch op {
        case .less: return a < b
        case .lessOrEqual: return a <= b
        case .greater: return a > b
        case .greaterOrEqual: return a >= b
        case .equal: return a == b
        case .notEqual: return a != b
        default: return false
        }
    }
}

extension AlertDefinition.Baseline {
    /// The mean of end-of-day values over the previous `count` days (or the same weekday of the
    /// previous `count` weeks), excluding `today`; nil without any history.
    public func value(history: [DayNumber: Double], today: DayNumber) -> Double? {
        let days: [DayNumber] = sameWeekday
            ? (1...max(count, 1)).map { today - DayNumber(7 * $0) }
            : (1...max(count, 1)).map { today - DayNumber($0) }
        let values = days.compactMap { history[$0] }
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
}
