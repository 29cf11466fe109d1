import Foundation
import SegmenterCore
import SegmenterStore
import ServiceRuntime
import Outputs

/// Lag, watermarks, outbox depth and age, and (every 15 s, as they scan) timers and state size,
/// for `/api/ingest`, the dashboard and `/metrics`. Read on the commit thread, once per emit.
struct IngestGauges {
    let operations: OperationalState
    let stateDirectory: URL
    private var lastSlowGauges: ContinuousClock.Instant

    init(operations: OperationalState, stateDirectory: URL, clock: any ServiceClock) {
        self.operations = operations
        self.stateDirectory = stateDirectory
        lastSlowGauges = clock.monotonicNow - .seconds(60)
    }

    mutating func record(stores: [Int32: PartitionStore], lag: [String: Int64], group: GroupPartials.Watermark, leader: KPILeader,
                         clock: any ServiceClock) {
        let sources: [Int32: any OutboxSource] = stores
        let depth = sources.values.reduce(0) { $0 + ((try? $1.outboxDepth()) ?? 0) }
        let oldest = sources.values.compactMap { try? $0.outboxOldest() }.min()
        let slow = clock.monotonicNow - lastSlowGauges >= .seconds(15)
        if slow { lastSlowGauges = clock.monotonicNow }
        let timers = slow ? stores.values.reduce(0) { $0 + ((try? $1.timerCount()) ?? 0) } : nil
        let bytes = slow ? Self.stateBytes(stateDirectory) : nil
        let publishing = leader.publisher != nil
        operations.update { ingest in
            ingest.lag = lag
            ingest.outboxDepth = depth
            ingest.now = publishing ? leader.groupClock : group.time
            ingest.pairs = stores.mapValues(\.watermark)
            ingest.heldBackBy = group.heldBackBy
            ingest.kpiLeader = publishing
            if let timers { ingest.timers = timers }
            if let bytes { ingest.stateBytes = bytes }
        }
        ServiceMetrics.recordGauges(operations.snapshot, alerts: (leader.publisher?.alertStatus ?? [:]).mapValues { $0.state == .firing },
                                    kpis: leader.publisher?.values ?? [:], wallNow: clock.wallNow)
        ServiceMetrics.outboxAge.record(oldest.map { Double(clock.wallNow.nanoseconds - $0.nanoseconds) / 1e9 } ?? 0)
    }

    /// Bytes of the state directory's files (databases and their WALs).
    static func stateBytes(_ directory: URL) -> Int64 {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.reduce(0) { total, name in
            let size = (try? FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(name).path)[.size] as? Int64) ?? 0
            return total + size
        }
    }
}
