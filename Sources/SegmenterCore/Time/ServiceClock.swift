import Foundation

/// The clocks the service reads (ingest, outputs, reconciliation, the warehouses' time-outs),
/// injected so tests advance time instead of sleeping. The core's decisions never read them:
/// they take `now` as a parameter.
///
/// Two readings, for two purposes: the wall clock is a calendar instant (the hybrid clock, the
/// received-at stamp of dead letters); the monotonic clock measures intervals (KPI emits,
/// heartbeats, how long the leader has waited) and never jumps when the system time is set.
public protocol ServiceClock: Sendable {
    var wallNow: Instant { get }
    var monotonicNow: ContinuousClock.Instant { get }
    /// Returns once the wall clock has reached `deadline` (throws if the task is cancelled).
    func sleep(until deadline: Instant) async throws
}

/// The machine's clocks.
public struct SystemClock: ServiceClock {
    public init() {}
    public var wallNow: Instant { Instant.wallClock() }
    public var monotonicNow: ContinuousClock.Instant { ContinuousClock.now }
    public func sleep(until deadline: Instant) async throws {
        let left = deadline.nanoseconds - wallNow.nanoseconds
        if left > 0 { try await Task.sleep(for: .nanoseconds(left)) }
    }
}

extension Duration {
    /// In seconds, for rates and reports.
    package var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
