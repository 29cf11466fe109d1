import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SegmenterCore

/// The KPI leader's side of a group-wide drill-down: each other instance's sums over the
/// partitions it owns (`/api/drilldown?scope=owned`), asked once per instance with the token.
/// Runs on the commit thread when an alert starts firing, so each request is bounded (3 s).
enum GroupDrillDown {
    static let timeout = 3.0

    /// - Parameter announcements: the latest announcement of each partition this instance does not own.
    /// - Returns: the accumulators that came back, and the partitions nobody answered for.
    static func gather(from announcements: some Collection<PartialsAnnouncement>, config: SegmenterConfig, segment: String,
                       kpi: String) -> (accumulators: [DrillDownAccumulator], missing: Set<Int32>) {
        var missing = Set(announcements.map(\.partition))
        var accumulators: [DrillDownAccumulator] = []
        let byInstance = Dictionary(grouping: announcements, by: \.instance)
        for (instance, owned) in byInstance where instance != config.instanceName {
            guard let api = owned.first?.api,
                  let query = "segment=\(segment)&kpi=\(kpi)".addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed),
                  let url = URL(string: "\(api)/api/drilldown?scope=owned&\(query)"),
                  let data = fetch(url, token: config.httpAccess.token),
                  let accumulator = try? JSONDecoder().decode(DrillDownAccumulator.self, from: data) else { continue }
            accumulators.append(accumulator)
            missing.subtract(owned.map(\.partition))
        }
        return (accumulators, missing)
    }

    /// A blocking GET (the caller is the commit thread, which has no async context).
    private static func fetch(_ url: URL, token: String?) -> Data? {
        var request = URLRequest(url: url)
        request.timeoutInterval = timeout
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Data?
        URLSession.shared.dataTask(with: request) { data, response, _ in
            if (response as? HTTPURLResponse)?.statusCode == 200 { result = data }
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + timeout + 1) == .success else { return nil }
        return result
    }
}
