import Foundation
import SegmenterCore
import ServiceConfig
import ServiceRuntime

/// The other instances' drill-down sums, gathered on a thread of their own so the commit thread
/// never waits on the network. The KPI step that fires an alert asks `take`: the first time it
/// starts the gather and the step is abandoned (`Pending`); the KPI leader takes the run again at
/// its next emit, and by then the answer is here (SPEC §6: the message carries both sides).
package final class GroupDrillDowns: @unchecked Sendable {
    /// Thrown by a drill-down whose group answer is still being gathered.
    package struct Pending: Error, CustomStringConvertible {
        package let alert: String
        package var description: String { "the drill-down of \(alert) is being gathered from the other instances" }
    }

    private struct Pair: Hashable { let segment: String; let kpi: String }
    private enum Slot {
        case gathering
        case ready(GroupDrillDown.Gathered, at: ContinuousClock.Instant)
    }

    /// An answer not taken within this long is gathered again: it may describe another firing.
    static let freshFor: Duration = .seconds(30)

    private let config: SegmenterConfig
    private let clock: any ServiceClock
    private let answered = NSCondition()
    private var slots: [Pair: Slot] = [:]

    package init(config: SegmenterConfig, clock: any ServiceClock) {
        self.config = config
        self.clock = clock
    }

    /// The other instances' sums for `alert`'s pair, once gathered (each answer serves one
    /// firing). Otherwise starts the gather and throws `Pending`, or with `wait` (a forced emit
    /// before the partitions leave, when no later emit would take the run again) waits for it.
    package func take(for alert: AlertDefinition, from announcements: [PartialsAnnouncement],
                      wait: Bool) throws -> GroupDrillDown.Gathered {
        let pair = Pair(segment: alert.segment, kpi: alert.kpi)
        let deadline = clock.monotonicNow + .seconds(GroupDrillDown.timeout + 2)
        answered.lock()
        defer { answered.unlock() }
        while true {
            switch slots[pair] {
            case let .ready(gathered, at) where clock.monotonicNow - at < Self.freshFor:
                slots[pair] = nil
                return gathered
            case .gathering:
                break
            case .ready, nil:
                slots[pair] = .gathering
                startGathering(pair, from: announcements)
            }
            guard wait, clock.monotonicNow < deadline else { throw Pending(alert: alert.name) }
            _ = answered.wait(until: Date().addingTimeInterval(0.1))
        }
    }

    private func startGathering(_ pair: Pair, from announcements: [PartialsAnnouncement]) {
        let config = config
        Thread.detachNewThread { [self] in
            let gathered = GroupDrillDown.gather(from: announcements, config: config, segment: pair.segment, kpi: pair.kpi)
            answered.lock()
            slots[pair] = .ready(gathered, at: clock.monotonicNow)
            answered.broadcast()
            answered.unlock()
        }
    }
}
