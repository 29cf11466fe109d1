import Foundation
import SegmenterCore
import SegmenterStore
import ServiceConfig

/// `/api/history?segment=NAME`: each KPI of one segment over time (event time, steps at the
/// chain's resolution) and the periods its alerts fired, for the dashboard's charts.
struct SegmentHistory: Encodable {
    struct Point: Encodable {
        let at: String
        let value: Double?
    }

    struct Firing: Encodable {
        let alert: String
        let kpi: String
        let from: String
        /// nil: still firing.
        let until: String?
    }

    let segment: String
    let resolutionSeconds: Int64
    /// Per KPI, its values oldest first, each holding until the next.
    let kpis: [String: [Point]]
    let firing: [Firing]

    enum CodingKeys: String, CodingKey { case segment, resolutionSeconds = "resolution_seconds", kpis, firing }

    static func read(config: SegmenterConfig, segment: String) throws -> SegmentHistory {
        let alerts = config.alerts.filter { $0.segment == segment }
        let path = config.stateDirectory.appendingPathComponent(PartitionStore.fileName(partition: 0)).path
        let (series, periods) = try KPISeries.read(databasePath: path, segment: segment, alerts: alerts.map(\.name))
        let kpiOf = Dictionary(alerts.map { ($0.name, $0.kpi) }, uniquingKeysWith: { first, _ in first })
        let names = config.catalog.kpis(for: segment).map(\.name) + config.catalog.builtInKPIs
        return SegmentHistory(
            segment: segment, resolutionSeconds: KPISeries.resolutionSeconds,
            kpis: Dictionary(uniqueKeysWithValues: names.map { name in
                (name, (series[name] ?? []).map { Point(at: $0.at.description, value: $0.value) })
            }),
            firing: periods.map { Firing(alert: $0.alert, kpi: kpiOf[$0.alert] ?? "", from: $0.started.description, until: $0.ended?.description) })
    }
}
