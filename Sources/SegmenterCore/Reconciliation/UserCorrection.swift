/// What the warehouse says of one user (SPEC §9), and what taking it changes. Pure: the store
/// reads the values it holds for the corrected days, this decides, the store writes the result
/// and re-evaluates the user (`BatchProcessor.evaluate`, cause `reconciliation`).
///
/// Values are set, not added: taking the same correction twice changes nothing the second time,
/// so a retried run cannot count twice. Lifetime totals move by each day's difference.
public struct UserCorrection: Sendable, Equatable {
    /// The warehouse's sums per day (all zeros: the user had nothing that day).
    public var days: [DayNumber: DayAggregate] = [:]
    /// The warehouse's metric day totals (a zero: none).
    public var metrics: [MetricDayCorrection] = []
    /// The warehouse's sign-up time.
    public var signup: Instant?

    public init(days: [DayNumber: DayAggregate] = [:], metrics: [MetricDayCorrection] = [], signup: Instant? = nil) {
        self.days = days
        self.metrics = metrics
        self.signup = signup
    }

    /// A day whose stored sums differ from the warehouse's.
    public struct DayChange: Sendable, Equatable {
        public let day: DayNumber
        public let before: DayAggregate
        public let after: DayAggregate
    }

    /// A metric day total that differs (`after` 0: the row goes).
    public struct MetricChange: Sendable, Equatable {
        public let correction: MetricDayCorrection
        public let before: Int64
    }

    /// What taking a correction changes.
    public struct Outcome: Sendable, Equatable {
        public var days: [DayChange] = []
        public var metrics: [MetricChange] = []
        public var signupChanged = false
        /// Whether the user's profile (and so their memberships) may have moved.
        public var changesProfile: Bool { !days.isEmpty || !metrics.isEmpty || signupChanged }
    }

    /// Compares the correction with what is stored and moves `profile` to the warehouse's values.
    /// - Parameters:
    ///   - storedDay: the sums stored for a corrected day (zeros when there is no row).
    ///   - storedMetric: the total stored for a corrected metric day (0 when there is none).
    public func take(into profile: inout UserProfile, storedDay: (DayNumber) throws -> DayAggregate,
                     storedMetric: (MetricDayCorrection) throws -> Int64) rethrows -> Outcome {
        var outcome = Outcome()
        for (day, truth) in days.sorted(by: { $0.key < $1.key }) {
            let current = try storedDay(day)
            guard current != truth else { continue }
            outcome.days.append(DayChange(day: day, before: current, after: truth))
            profile.addToLifetime(truth - current)
        }
        for correction in metrics {
            let current = try storedMetric(correction)
            guard current != correction.total else { continue }
            outcome.metrics.append(MetricChange(correction: correction, before: current))
            let lifetime = profile.metrics.totals[correction.key]?.lifetime ?? 0
            profile.metrics.totals[correction.key, default: MetricTotals()].lifetime = MetricCatalog.saturating(lifetime, correction.total - current)
        }
        if let signup, profile.signupAt != signup {
            profile.correctSignup(to: signup)
            outcome.signupChanged = true
        }
        return outcome
    }
}
