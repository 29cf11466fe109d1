import Foundation
import SegmenterCore
import SegmenterStore

/// Renders users' features as JSON lines (SPEC §3 names as keys), as of a given `now`.
public enum FeatureExport {
    public static let defaultWindows = [7, 30]

    /// The windows one export may ask for: whole days in 1...3650, at most 16 of them (as rules'
    /// windows; a request for `windows=9223372036854775807` trapped on overflow, issue 25).
    public static let windowRange = 1...3650
    public static let maximumWindows = 16

    /// Why `windows` cannot be exported, or nil.
    public static func problem(with windows: [Int]) -> String? {
        if windows.isEmpty { return "give at least one window, in days (1...3650)" }
        if windows.count > maximumWindows { return "at most \(maximumWindows) windows, not \(windows.count)" }
        if let bad = windows.first(where: { !windowRange.contains($0) }) { return "a window must be 1...3650 days, not \(bad)" }
        return nil
    }

    /// `windows=7,30` of a request, checked.
    public static func windows(query text: String?) -> Result<[Int], ExportRequestError> {
        guard let text else { return .success(defaultWindows) }
        var windows: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let days = Int(part) else { return .failure(ExportRequestError("windows must be whole days like 7,30, not \"\(part.prefix(40))\"")) }
            windows.append(days)
        }
        if let problem = problem(with: windows) { return .failure(ExportRequestError(problem)) }
        return .success(windows)
    }

    public struct ExportRequestError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// One user's features (SPEC §3 names as keys), after `user_id` and `as_of`, in order.
    /// Metrics (SPEC §4b) follow the built-in features: each over the windows and its lifetime,
    /// and hours since its latest counted event.
    public static func fields(_ user: StateReader.UserState, now: Instant, calendar: DayCalendar, windows: [Int],
                              metrics: MetricCatalog = MetricCatalog()) -> OrderedFields<FeatureValue> {
        let evaluator = FeatureEvaluator(profile: user.profile, days: user.days, now: now, calendar: calendar)
        let attributeNames = user.profile.attributes.filter { $0.value.value != nil }.map(\.key)
        var fields: [(String, FeatureValue)] = [("user_id", .string(user.userID)), ("as_of", .string(now.description))]
        for feature in Feature.standardSet(windows: windows, attributeNames: attributeNames) + metricFeatures(metrics, windows: windows) {
            fields.append((feature.description, evaluator.value(of: feature)))
        }
        return OrderedFields(fields)
    }

    /// One user's features as a JSON object: a line of `export features`, keys in the order
    /// above (`user_id` first). Written as text: JSONEncoder orders keys only by sorting them,
    /// and a stream of lines reads best in one fixed order.
    public static func json(_ user: StateReader.UserState, now: Instant, calendar: DayCalendar, windows: [Int],
                            metrics: MetricCatalog = MetricCatalog()) -> String {
        JSONText.object(fields(user, now: now, calendar: calendar, windows: windows, metrics: metrics).fields.map { ($0.0, $0.1.json) })
    }

    static func metricFeatures(_ metrics: MetricCatalog, windows: [Int]) -> [Feature] {
        metrics.metrics.flatMap { metric in
            windows.map { Feature.metric(metric.ref, .days($0)) } + [.metric(metric.ref, .lifetime), .hoursSinceLast(metric.ref)]
        }
    }

    /// The first day any of `windows` can reach, so older day rows are not read.
    public static func firstDay(now: Instant, calendar: DayCalendar, windows: [Int]) -> DayNumber {
        calendar.day(of: now) - DayNumber((windows.max() ?? 1) - 1)
    }

    /// Writes every user's features to `output`, one line each; returns the number of users.
    /// - Parameter now: one instant for everyone; nil: each user as of their partition pair's clock.
    @discardableResult
    public static func export(from reader: StateReader, now: Instant?, calendar: DayCalendar, windows: [Int],
                              metrics: MetricCatalog = MetricCatalog(), to output: (String) -> Void) throws -> Int {
        let clocks = try reader.pairClocks()
        guard let earliest = now ?? clocks.values.min() else { return 0 }
        var count = 0
        try reader.forEachUser(daysFrom: firstDay(now: earliest, calendar: calendar, windows: windows)) { user in
            output(json(user, now: now ?? clocks[user.partition] ?? earliest, calendar: calendar, windows: windows, metrics: metrics))
            count += 1
        }
        return count
    }
}
