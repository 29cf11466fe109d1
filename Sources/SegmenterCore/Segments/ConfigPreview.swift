/// What a changed configuration would do to the users as they stand, built one user at a time
/// from their last published memberships and their evaluation under the new rules: `preview`.
/// The same differences `run` publishes with cause `config` when it starts with that config.
public struct ConfigPreview: Sendable {
    public struct SegmentChange: Sendable, Equatable {
        public let segment: String
        public internal(set) var enter = 0
        public internal(set) var exit = 0
        /// The first users (in id order per partition) who would enter / exit.
        public internal(set) var entering: [String] = []
        public internal(set) var exiting: [String] = []
    }

    public struct KPIChange: Sendable, Equatable {
        public let key: KPIKey
        public let now: Double?
        public let after: Double?

        /// Beyond float noise (the preview sums in another order than the incremental partials).
        public var changes: Bool {
            guard let now, let after else { return (now == nil) != (after == nil) }
            return abs(now - after) > 1e-9 * max(1, abs(now))
        }
    }

    public struct AlertChange: Sendable, Equatable {
        public let alert: String
        public let now: Bool?
        public let after: Bool?
    }

    public let catalog: SegmentCatalog
    public let sampleSize: Int
    public private(set) var users = 0
    public private(set) var segments: [String: SegmentChange] = [:]
    /// The partials the new rules would give (KPIs after).
    public private(set) var after = KPIPartials()

    public init(catalog: SegmentCatalog, sampleSize: Int = 5) {
        self.catalog = catalog
        self.sampleSize = sampleSize
        for name in catalog.segmentNames where name != SegmentCatalog.allSegment { segments[name] = SegmentChange(segment: name) }
    }

    /// One user: `published` are the segments their stored memberships hold, `evaluation` the
    /// new rules' verdict at their pair's watermark.
    public mutating func add(_ userID: String, published: Set<String>, evaluation: UserEvaluation) {
        users += 1
        for (segment, contributions) in evaluation.contributions {
            after.replace(catalog.partialKeys(of: segment), old: nil, new: contributions)
        }
        for name in published.symmetricDifference(evaluation.segments) where name != SegmentCatalog.allSegment {
            let entering = evaluation.segments.contains(name)
            var change = segments[name] ?? SegmentChange(segment: name)
            if entering {
                change.enter += 1
                if change.entering.count < sampleSize { change.entering.append(userID) }
            } else {
                change.exit += 1
                if change.exiting.count < sampleSize { change.exiting.append(userID) }
            }
            segments[name] = change
        }
    }

    public var exits: Int { segments.values.reduce(0) { $0 + $1.exit } }

    /// Each KPI of the new config now (from the stored partials, as `current` computes values)
    /// and after.
    public func kpis(now stored: [KPIKey: KPIPartial], current: SegmentCatalog) -> [KPIChange] {
        catalog.kpiKeys.map { key in
            KPIChange(key: key, now: current.kpiKeys.contains(key) ? current.value(of: key, in: stored) : nil,
                      after: catalog.value(of: key, in: after.values))
        }
    }

    /// Alerts whose condition would flip: threshold alerts, and drop/rise alerts against the
    /// baseline each last used (`baselines`, by alert name; none yet: left out).
    public func alerts(_ definitions: [AlertDefinition], kpis: [KPIChange], baselines: [String: Double] = [:]) -> [AlertChange] {
        definitions.compactMap { alert in
            guard let change = kpis.first(where: { $0.key == KPIKey(segment: alert.segment, kpi: alert.kpi) }) else { return nil }
            let baseline = baselines[alert.name]
            if case .threshold = alert.condition {} else if baseline == nil { return nil }
            let now = change.now.flatMap { alert.conditionHolds(value: $0, baseline: baseline) }
            let after = change.after.flatMap { alert.conditionHolds(value: $0, baseline: baseline) }
            return now == after ? nil : AlertChange(alert: alert.name, now: now, after: after)
        }
    }
}

extension AlertDefinition {
    /// Whether the alert's condition holds for `value` (nil for drop/rise without a baseline).
    public func conditionHolds(value: Double, baseline: Double? = nil) -> Bool? { isFiringCondition(value: value, baseline: baseline) }
}
