import SegmenterCore
import Foundation

/// What the HTTP API can ask the running service: is it alive and caught up enough to serve.
public final class ServiceHealth: @unchecked Sendable {
    private let lock = NSLock()
    private var assigned = 0
    private var lastPoll: ContinuousClock.Instant?
    private let clock: any ServiceClock

    /// Ingest figures and recent KPI values, for the dashboard and `/api/ingest`.
    public let operations: OperationalState

    public init(clock: any ServiceClock = SystemClock()) {
        self.clock = clock
        operations = OperationalState(clock: clock)
    }

    package func polled() { let now = clock.monotonicNow; lock.lock(); lastPoll = now; lock.unlock() }
    package func assignment(count: Int) { lock.lock(); assigned = count; lock.unlock() }

    /// Ready: partitions are assigned and restored, the consumer polled the broker recently, and
    /// the consumer lag (summed over owned partitions) is at most `maxLag` (nil: no bound).
    public func readiness(maxLag: Int64? = nil) -> (ready: Bool, reason: String) {
        let lag = operations.snapshot.lag.values.reduce(0, +)
        lock.lock()
        defer { lock.unlock() }
        guard assigned > 0 else { return (false, "no partitions assigned yet") }
        guard let lastPoll, clock.monotonicNow - lastPoll < .seconds(10) else { return (false, "the consumer has not polled for 10 s") }
        if let maxLag, lag > maxLag { return (false, "consumer lag \(lag) is above http.ready_max_lag \(maxLag)") }
        return (true, "\(assigned) partitions assigned, lag \(lag)")
    }
}
