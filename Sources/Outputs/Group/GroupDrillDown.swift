import Foundation
import SegmenterCore
import ServiceConfig

/// The KPI leader's side of a group-wide drill-down: each other instance's sums over the
/// partitions it owns (`/api/drilldown?scope=owned`), asked once per instance with the token.
/// Every instance is asked at once, so a gather takes at most one time-out (3 s), however many
/// instances the group has; `GroupDrillDowns` runs it off the commit thread.
package enum GroupDrillDown {
    package static let timeout = 3.0

    /// What a gather brought back.
    package typealias Gathered = (accumulators: [DrillDownAccumulator], missing: Set<Int32>)

    /// - Parameter announcements: the latest announcement of each partition this instance does not own.
    /// - Returns: the accumulators that came back, and the partitions nobody answered for.
    package static func gather(from announcements: some Collection<PartialsAnnouncement>, config: SegmenterConfig, segment: String,
                       kpi: String) -> Gathered {
        let client = GroupClient(config: config)
        guard let query = "segment=\(segment)&kpi=\(kpi)".addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) else {
            return ([], Set(announcements.map(\.partition)))
        }
        let others = Dictionary(grouping: announcements, by: \.instance).filter { $0.key != config.instanceName }.map(\.value)
        let answers = Answers(count: others.count)
        let asked = DispatchGroup()
        for (index, owned) in others.enumerated() {
            guard let api = owned.first?.api else { continue }
            asked.enter()
            // A thread each (not the global queue, two threads wide here): all wait at once.
            Thread.detachNewThread {
                defer { asked.leave() }
                guard let data = client.getWaiting(api, "/api/drilldown?scope=owned&\(query)", timeout: timeout) else { return }
                answers.set(index, try? JSONDecoder().decode(DrillDownAccumulator.self, from: data))
            }
        }
        _ = asked.wait(timeout: .now() + timeout + 1)
        var missing = Set(announcements.map(\.partition))
        var accumulators: [DrillDownAccumulator] = []
        for (index, owned) in others.enumerated() {
            guard let accumulator = answers[index] else { continue }
            accumulators.append(accumulator)
            missing.subtract(owned.map(\.partition))
        }
        return (accumulators, missing)
    }

    /// One slot per instance, written by the request threads.
    private final class Answers: @unchecked Sendable {
        private let lock = NSLock()
        private var slots: [DrillDownAccumulator?]
        init(count: Int) { slots = Array(repeating: nil, count: count) }
        func set(_ index: Int, _ value: DrillDownAccumulator?) { lock.withLock { slots[index] = value } }
        subscript(index: Int) -> DrillDownAccumulator? { lock.withLock { slots[index] } }
    }
}
