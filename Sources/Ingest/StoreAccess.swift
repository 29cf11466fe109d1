import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceConfig
import Outputs

/// The partition databases as one reconciliation step sees them, on the thread that owns them.
public final class StoreSession {
    public let stores: [Int32: PartitionStore]
    /// The group's time as far as these partitions go: the earliest of their clocks (nil
    /// before any event). Each partition re-evaluates its users at its own clock.
    public let now: Instant?
    private(set) var kpiCauses: [String: ChangeCause] = [:]
    private(set) var membershipChanges: [ChangeCause: Int] = [:]
    /// Whether the step wrote corrections (`note` was called).
    private(set) var wrote = false

    init(stores: [Int32: PartitionStore], now: Instant?) {
        self.stores = stores
        self.now = now
    }

    /// Remembers which segments' KPIs a step moved, so the next KPI emit names the cause.
    public func note(_ outcome: BatchOutcome) {
        wrote = true
        kpiCauses.merge(outcome.kpiCauses) { $1 }
        membershipChanges.merge(outcome.membershipChangesByCause, uniquingKeysWith: +)
    }
}

/// Where reconciliation may touch partition state: inside `run` that is the commit thread (so
/// corrections are serialised with ingest batches and the caches stay true); standalone, the
/// caller's own stores.
public protocol StoreAccess: Sendable {
    func withStores<T: Sendable>(_ body: @escaping @Sendable (StoreSession) throws -> T) async throws -> T
}

extension StoreAccess {
    /// Read-only connections to the partitions this access holds, for the long scans (per-day
    /// totals, a day's rows, sign-ups) so they run beside ingest rather than between its batches.
    public func readers() async throws -> [Int32: PartitionReads] {
        let paths = try await withStores { session in session.stores.mapValues(\.path) }
        return try paths.mapValues { try PartitionReads(readOnlyPath: $0) }
    }
}

/// Standalone access for `reconcile --once` and `--backfill` when no `run` holds the state.
public final class DirectStoreAccess: StoreAccess, @unchecked Sendable {
    private let lock = NSLock()
    public let stores: [Int32: PartitionStore]
    public private(set) var kpiCauses: [String: ChangeCause] = [:]

    /// Opens (creating if needed) the databases of partitions `0..<partitionCount`.
    /// - Parameter applyingDefinitionChanges: re-evaluate everyone (cause `config`) where the
    ///   segment definitions changed since the state was written; a rebuild does not, its own
    ///   evaluation publishes those differences.
    public init(config: SegmenterConfig, partitionCount: Int, applyingDefinitionChanges: Bool = true) throws {
        try FileManager.default.createDirectory(at: config.stateDirectory, withIntermediateDirectories: true)
        var stores: [Int32: PartitionStore] = [:]
        for partition in 0..<Int32(partitionCount) {
            let store = try config.openPartition(partition, partitionCount: partitionCount)
            if applyingDefinitionChanges { _ = try store.applyDefinitionChanges() }
            stores[partition] = store
        }
        self.stores = stores
    }

    /// Names the cause the next KPI publish gives each segment's deltas.
    public func note(_ cause: ChangeCause, segments: some Sequence<String>) {
        lock.withLock { for segment in segments { kpiCauses[segment] = cause } }
    }

    /// The earliest of the partitions' clocks (nothing is being consumed: a partition without
    /// events holds nothing back).
    public func now() throws -> Instant? { stores.values.compactMap(\.watermark.clock).min() }

    /// Steps that wrote corrections: one per run (tests check the run's corrections land together).
    public private(set) var writingSteps = 0

    public func withStores<T: Sendable>(_ body: @escaping @Sendable (StoreSession) throws -> T) async throws -> T {
        try lock.withLock {
            let session = StoreSession(stores: stores, now: try now())
            let result = try body(session)
            kpiCauses.merge(session.kpiCauses) { $1 }
            if session.wrote { writingSteps += 1 }
            return result
        }
    }
}

/// The partition count of the state directory's existing databases (`partition-NNNN.sqlite`).
public func partitionFilesCount(in directory: URL) -> Int {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    let numbers = names.compactMap { name -> Int? in
        guard name.hasPrefix("partition-"), name.hasSuffix(".sqlite") else { return nil }
        return Int(name.dropFirst("partition-".count).dropLast(".sqlite".count))
    }
    return (numbers.max() ?? -1) + 1
}

extension DirectStoreAccess {
    /// After a standalone run: publishes the KPI values the corrections moved (cause
    /// `reconciliation`) through the KPI publisher's outbox, then tries to hand every outbox
    /// row to Kafka. Rows Kafka does not take in `timeoutMs` stay in the outbox, and the next
    /// `run` publishes them: nothing is lost either way.
    /// - Returns: rows still waiting in outboxes.
    public func publishOutputs(config: SegmenterConfig, timeoutMs: Int = 15_000) throws -> Int {
        let producer = try? KafkaProducer(configuration: config.kafka)
        // With several instances this directory holds only some partitions: global values are
        // not known here. The KPI leader publishes them once `run` announces these partitions again.
        let partitions = (try? producer?.partitionCount(of: config.topics.activity, timeoutMs: 5000)) ?? nil
        if let now = try now(), let zero = stores[0], stores.count >= partitions ?? 0 {
            try KPIPublisher(store: zero, topic: config.topics.kpiDeltas).publish(
                catalog: config.catalog, partials: KPIPartials.sum(stores.values.map(\.partials)), now: now,
                causes: kpiCauses, alerts: config.alerts, alertTopic: config.topics.alerts, calendar: config.calendar)
        }
        let sources: [Int32: any OutboxSource] = stores
        if let producer { try OutboxRelay(producer: producer).drain(sources, timeoutMs: timeoutMs) }
        return try sources.values.reduce(0) { $0 + (try $1.outboxDepth()) }
    }
}
