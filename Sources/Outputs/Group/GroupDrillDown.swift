import Foundation
import SegmenterCore
import ServiceConfig

/// The KPI leader's side of a group-wide drill-down: each other instance's sums over the
/// partitions it owns (`/api/drilldown?scope=owned`), asked once per instance with the token.
/// Runs on the commit thread when an alert starts firing, so each request is bounded (3 s).
package enum GroupDrillDown {
    static let timeout = 3.0

    /// - Parameter announcements: the latest announcement of each partition this instance does not own.
    /// - Returns: the accumulators that came back, and the partitions nobody answered for.
    package static func gather(from announcements: some Collection<PartialsAnnouncement>, config: SegmenterConfig, segment: String,
                       kpi: String) -> (accumulators: [DrillDownAccumulator], missing: Set<Int32>) {
        var missing = Set(announcements.map(\.partition))
        var accumulators: [DrillDownAccumulator] = []
        let client = GroupClient(config: config)
        let byInstance = Dictionary(grouping: announcements, by: \.instance)
        for (instance, owned) in byInstance where instance != config.instanceName {
            guard let api = owned.first?.api,
                  let query = "segment=\(segment)&kpi=\(kpi)".addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed),
                  let data = client.getWaiting(api, "/api/drilldown?scope=owned&\(query)", timeout: timeout),
                  let accumulator = try? JSONDecoder().decode(DrillDownAccumulator.self, from: data) else { continue }
            accumulators.append(accumulator)
            missing.subtract(owned.map(\.partition))
        }
        return (accumulators, missing)
    }
}
