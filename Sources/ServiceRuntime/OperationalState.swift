import Foundation
import SegmenterCore

/// What the commit thread knows about the running service and the HTTP side shows: ingest
/// health for the dashboard and `/api/ingest`, and recent KPI values for sparklines.
/// Written by the commit thread, read by HTTP handlers; one lock.
public final class OperationalState: @unchecked Sendable {
    public struct Ingest: Sendable {
        public var consumed = 0
        public var applied = 0
        public var deadLettered = 0
        public var duplicates = 0
        /// Messages per second over the last few seconds.
        public var rate = 0.0
        /// Per "topic/partition": high watermark minus the next offset to consume.
        public var lag: [String: Int64] = [:]
        public var outboxDepth = 0
        public var timers = 0
        public var stateBytes: Int64 = 0
        /// The group's watermark (on the KPI leader; elsewhere the earliest of its own pairs').
        public var now: Instant?
        /// Each owned partition pair's watermark.
        public var pairs: [Int32: PairWatermark] = [:]
        /// The partition pair whose watermark is the group's (the one holding it back).
        public var heldBackBy: Int32?
        /// Whether this instance owns partition 0 and so publishes the group's KPIs and alerts
        /// (another instance's `/api/segments` shows them otherwise).
        public var kpiLeader = false
    }

    /// One sparkline point per KPI.
    public struct Sample: Sendable {
        public let at: Instant
        public let values: [KPIKey: Double?]
    }

    private let lock = NSLock()
    private var ingest = Ingest()
    private var samples: [Sample] = []
    private var lastSample: ContinuousClock.Instant
    private let clock: any ServiceClock
    private var rateWindow: [(ContinuousClock.Instant, Int)] = []
    static let sampleCapacity = 180

    public init(clock: any ServiceClock = SystemClock()) {
        self.clock = clock
        lastSample = clock.monotonicNow - .seconds(3600)
    }

    public var snapshot: Ingest { lock.withLock { ingest } }
    public var recentSamples: [Sample] { lock.withLock { samples } }

    package func update(_ body: (inout Ingest) -> Void) { lock.withLock { body(&ingest) } }

    /// Counts consumed messages for the rate (a sliding window of ~10 s).
    package func noteConsumed(total: Int) {
        lock.withLock {
            let now = clock.monotonicNow
            rateWindow.append((now, total))
            while let first = rateWindow.first, now - first.0 > .seconds(10) { rateWindow.removeFirst() }
            if let first = rateWindow.first, first.0 < now {
                let seconds = (now - first.0).seconds
                ingest.rate = seconds > 0 ? Double(total - first.1) / seconds : 0
            }
        }
    }

    /// Keeps a KPI sample at most every `every` (bounded, oldest dropped).
    package func sample(_ values: [KPIKey: Double?], at instant: Instant, every: Duration = .seconds(2)) {
        lock.withLock {
            let now = clock.monotonicNow
            guard now - lastSample >= every else { return }
            lastSample = now
            samples.append(Sample(at: instant, values: values))
            if samples.count > Self.sampleCapacity { samples.removeFirst(samples.count - Self.sampleCapacity) }
        }
    }
}
