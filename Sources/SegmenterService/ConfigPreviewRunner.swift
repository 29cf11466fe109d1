import Foundation
import SegmenterCore
import SegmenterStore
import ServiceConfig

/// `preview`: the new config's rules over the live state, read-only (a `StateReader` beside a
/// running `run`), each user at their partition pair's watermark against what was last published
/// for them — exactly what `run` publishes (cause `config`) when it starts with that config.
public enum ConfigPreviewRunner {
    public struct Result: Sendable {
        public let preview: ConfigPreview
        public let kpis: [ConfigPreview.KPIChange]
        public let alerts: [ConfigPreview.AlertChange]
        public let seconds: Double
        /// Metrics the state does not hold as defined (new or changed): they read as empty here
        /// and after the change, until `segmenter rebuild` (SPEC §4b).
        public var metricNotes: [String] = []
    }

    /// - Parameter current: the running config (KPI values now are computed with its definitions).
    /// - Parameter clock: times the preview (the figure it reports).
    public static func run(new: SegmenterConfig, current: SegmenterConfig, sampleSize: Int = 5,
                           clock: any ServiceClock = SystemClock()) throws -> Result {
        let started = clock.monotonicNow
        let reader = try StateReader(directory: current.stateDirectory)
        let clocks = try reader.pairClocks()
        var preview = ConfigPreview(catalog: new.catalog, sampleSize: sampleSize)
        if let earliest = clocks.values.min() {
            let firstDay = min(new.catalog.firstWindowDay(at: earliest, calendar: new.calendar),
                               current.catalog.firstWindowDay(at: earliest, calendar: current.calendar))
            try reader.forEachUserWithSegments(daysFrom: firstDay) { user, published in
                // A pair without time has evaluated nobody yet; `run` leaves it alone too.
                guard let now = clocks[user.partition] else { return }
                preview.add(user.userID, published: published,
                            evaluation: new.catalog.evaluate(profile: user.profile, days: user.days, now: now, calendar: new.calendar))
            }
        }
        let kpis = preview.kpis(now: try reader.kpiPartials(), current: current.catalog)
        let elapsed = clock.monotonicNow - started
        let baselines = ((try? AlertStateReader(directory: current.stateDirectory).read()) ?? [:]).compactMapValues(\.baseline)
        var result = Result(preview: preview, kpis: kpis, alerts: preview.alerts(new.alerts, kpis: kpis, baselines: baselines),
                            seconds: elapsed.seconds)
        result.metricNotes = try reader.metricDefinitionChanges(new.catalog.metrics).map(\.description)
        return result
    }
}

extension ConfigPreviewRunner.Result {
    /// For CI pipelines.
    public var json: String {
        JSONText.object([
            ("users", String(preview.users)), ("exits", String(preview.exits)),
            ("metric_notes", "[" + metricNotes.map(JSONText.quote).joined(separator: ",") + "]"),
            ("segments", "[" + preview.segments.values.sorted { $0.segment < $1.segment }.map { change in
                JSONText.object([("segment", JSONText.quote(change.segment)), ("enter", String(change.enter)), ("exit", String(change.exit)),
                                 ("entering", "[" + change.entering.map(JSONText.quote).joined(separator: ",") + "]"),
                                 ("exiting", "[" + change.exiting.map(JSONText.quote).joined(separator: ",") + "]")])
            }.joined(separator: ",") + "]"),
            ("kpis", "[" + kpis.map { change in
                JSONText.object([("segment", JSONText.quote(change.key.segment)), ("kpi", JSONText.quote(change.key.kpi)),
                                 ("now", Self.text(change.now)), ("after", Self.text(change.after)), ("changes", change.changes ? "true" : "false")])
            }.joined(separator: ",") + "]"),
            ("alerts", "[" + alerts.map { change in
                JSONText.object([("alert", JSONText.quote(change.alert)), ("condition_now", Self.text(change.now)),
                                 ("condition_after", Self.text(change.after))])
            }.joined(separator: ",") + "]"),
        ])
    }

    /// For people: per segment who would enter and exit (with a sample), its KPIs now → after,
    /// then the alerts whose condition would flip.
    public func lines(current: SegmentCatalog) -> [String] {
        var out = ["preview over \(preview.users) users, each at their partition pair's watermark (\(String(format: "%.2f", seconds)) s, nothing written)"]
        out += metricNotes.map { "note: \($0)" }
        for metric in preview.catalog.metrics.metrics {
            let before = current.metrics.metrics.first { $0.name == metric.name }
            out.append("metric \(metric.name): \(metric.canonical)" + (before == nil ? " (new)" : before!.key == metric.key ? "" : " (changed)"))
        }
        for name in preview.catalog.segmentNames {
            let rule = preview.catalog.segments.first { $0.name == name }?.ruleText
            let before = current.segments.first { $0.name == name }?.ruleText
            switch (before, rule) {
            case (_, nil): out.append("segment \(name)")  // `all`
            case let (nil, rule?): out.append("segment \(name): \(rule) (new)")
            case let (before?, rule?): out.append("segment \(name): " + (before == rule ? rule : "\(before)  →  \(rule)"))
            }
            if let change = preview.segments[name] {
                out.append("  would enter: \(change.enter)" + (change.entering.isEmpty ? "" : " (\(change.entering.joined(separator: ", "))\(change.enter > change.entering.count ? ", …" : ""))"))
                out.append("  would exit:  \(change.exit)" + (change.exiting.isEmpty ? "" : " (\(change.exiting.joined(separator: ", "))\(change.exit > change.exiting.count ? ", …" : ""))"))
            }
            for change in kpis where change.key.segment == name {
                out.append("  \(change.key.kpi): \(Self.text(change.now)) → \(Self.text(change.after))\(change.changes ? "   (changes)" : "")")
            }
        }
        for (name, change) in preview.segments.sorted(by: { $0.key < $1.key }) where !preview.catalog.segmentNames.contains(name) {
            out.append("segment \(name): removed; its \(change.exit) members would exit (\(change.exiting.joined(separator: ", "))\(change.exit > change.exiting.count ? ", …" : ""))")
        }
        out.append(alerts.isEmpty ? "alerts: no alert's condition would change (drop/rise: against the baseline each last used)"
                                  : "alerts: " + alerts.map { "\($0.alert) condition \(Self.text($0.now)) → \(Self.text($0.after))" }.joined(separator: "; "))
        return out
    }

    static func text(_ value: Bool?) -> String { value.map { $0 ? "true" : "false" } ?? "null" }
    /// Six decimals, as KPI messages carry them.
    static func text(_ value: Double?) -> String { value.map { JSONText.number(($0 * 1e6).rounded() / 1e6) } ?? "null" }
}
