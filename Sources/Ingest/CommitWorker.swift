import Foundation
import Logging
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceConfig
import ServiceRuntime
import Outputs

/// The commit thread: owns the partition databases and carries out what `CommitLoop` decides,
/// with three collaborators that each own one job:
/// - `BatchCommitter`: every owned partition commits one transaction side by side (its events,
///   its pair's watermark, their re-evaluation, its due timers).
/// - `KPILeader`: at most once per emit interval, announces the partitions' partials and
///   watermarks and, on the KPI leader, publishes changed KPIs and alerts as of the group's watermark.
/// - `OutboxRelay`: publishes outbox rows.
final class CommitWorker: @unchecked Sendable {
    let queue = WorkQueue<IngestCommand>(capacity: 2)
    private let config: SegmenterConfig
    private let clock: any ServiceClock
    private let stores: PartitionStores
    private let committer: BatchCommitter
    private let leader: KPILeader
    /// The other instances' halves of a firing alert's drill-down, asked off this thread.
    private let groupDrillDowns: GroupDrillDowns
    private let relay: OutboxRelay
    private let snapshots: StateSnapshots
    private var gauges: IngestGauges
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    private let operations: OperationalState
    /// Seeded with each assigned partition's event time, for the poll thread (see `EventTimeBoard`).
    private let eventTimes: EventTimeBoard
    private let logger: Logger
    private let report: (BatchOutcome, DecodedBatch, Int, Int64) -> Void
    private let finished = DispatchSemaphore(value: 0)
    private(set) var failure: Error?

    init(config: SegmenterConfig, producer: KafkaProducer, consumer: KafkaConsumer, partitionCount: Int?,
         operations: OperationalState, eventTimes: EventTimeBoard, clock: any ServiceClock = SystemClock(),
         logger: Logger, report: @escaping (BatchOutcome, DecodedBatch, Int, Int64) -> Void) throws {
        self.config = config
        self.clock = clock
        self.producer = producer
        self.consumer = consumer
        self.operations = operations
        self.eventTimes = eventTimes
        self.logger = logger.component("commit")
        self.report = report
        stores = PartitionStores(config: config, partitionCount: partitionCount, clock: clock, logger: logger)
        committer = BatchCommitter(config: config, consumer: consumer, clock: clock)
        leader = KPILeader(config: config, producer: producer, partitionCount: partitionCount, clock: clock, logger: logger)
        groupDrillDowns = GroupDrillDowns(config: config, clock: clock)
        relay = OutboxRelay(producer: producer, clock: clock)
        snapshots = StateSnapshots(config: config, producer: producer, clock: clock, logger: logger)
        gauges = IngestGauges(operations: operations, stateDirectory: config.stateDirectory, clock: clock)
        relay.watchedTopic = config.topics.kpiDeltas
        relay.onWatchedDelivery = { [weak leader] partition, offset in leader?.publisher?.noteDelivered(partition: partition, offset: offset) }
    }

    func start() {
        Thread.detachNewThread { [self] in
            do { try loop() } catch { failure = error }
            queue.close()
            // Wake a poll thread waiting on an answer that will never come.
            while let command = queue.take(timeout: 0) {
                switch command {
                case let .assigned(_, reply): reply.abandon()
                case let .revoked(_, reply): reply.abandon()
                case let .exclusive(body): body(nil)
                case .batch: break
                }
            }
            finished.signal()
        }
    }

    /// Stops taking work once the queue is empty, publishes KPIs, drains the outbox, waits.
    func finish() {
        queue.close()
        finished.wait()
    }

    var published: Int { relay.published }

    private var outboxSources: [Int32: any OutboxSource] { stores.open }

    private func loop() throws {
        var machine = CommitLoop(emitInterval: .milliseconds(config.kpiEmitIntervalMs), hybridClock: config.clock == .hybrid,
                                 startedAt: clock.monotonicNow)
        while machine.state == .running {
            let event: CommitLoop.Event = queue.take(timeout: 0.05).map { .command($0) } ?? .idle(queueClosed: queue.isClosed)
            for action in machine.actions(after: event, now: clock.monotonicNow, wall: clock.wallNow) {
                let started = clock.monotonicNow
                try perform(action)
                ServiceMetrics.recordCommitThread(action.name, clock.monotonicNow - started)
            }
            if case let .command(.batch(batch)) = event {
                ServiceMetrics.pollToOutput.record(duration: clock.monotonicNow - batch.polledAt)
            }
        }
    }

    private func perform(_ action: CommitLoop.Action) throws {
        switch action {
        case let .commit(batch):
            let started = clock.monotonicNow
            let wall = clock.wallNow
            let outcome = try committer.commit(batch.byPartition, into: stores, receivedAt: wall,
                                               wallClock: config.clock == .hybrid ? wall : nil)
            leader.note(outcome.kpiCauses)
            let took = clock.monotonicNow - started
            report(outcome, batch, relay.published, took.components.seconds * 1_000_000_000 + took.components.attoseconds / 1_000_000_000)
        case let .advanceWatermarks(wallClock):
            let outcome = try committer.commit([:], into: stores, receivedAt: clock.wallNow, wallClock: wallClock)
            leader.note(outcome.kpiCauses)
        case let .assign(partitions, reply):
            committer.forget(partitions)  // what was known of them before is stale
            let starts: [TopicPartition: StartOffset]
            do {
                starts = try stores.assign(partitions, snapshots: snapshots, history: inputHistory)
            } catch {
                reply.abandon()  // the poll thread waits on it; the loop's failure stops the service
                throw error
            }
            // Exported at 0 from the start, so an alert on it has a series before anything is skipped.
            for tp in partitions { ServiceMetrics.recordSkippedOffsets(0, of: tp) }
            for store in stores.open.values {
                eventTimes.seed(partition: store.partition, eventTimes: try store.eventTimes(), floor: try store.evidenceFloor())
            }
            reply.send(starts)
            try leader.takeLeadership(stores.open)
        case let .revoke(partitions, reply):
            // The partitions' final announcements reach the KPI leader before a new owner's.
            try? producer.flush(timeoutMs: 5_000)
            stores.revoke(partitions)
            let released = Set(partitions.map(\.partition)).filter { stores.open[$0] == nil }
            leader.release(released, stillOwned: stores.open)
            snapshots.forget(released)
            committer.forget(partitions)
            relay.forget(partitionsNotIn: outboxSources)
            reply.send(true)
        case let .exclusive(body):
            let session = StoreSession(stores: stores.open, now: PairWatermark.group(stores.open.values.map(\.watermark)))
            body(session)
            leader.note(session.kpiCauses)
            ServiceMetrics.recordMembershipChanges(session.membershipChanges)
        case let .emitKPIs(force):
            // Without partitions there is nothing to sum: publishing would claim every KPI fell to zero.
            guard !stores.open.isEmpty else { return }
            let group = try leader.emit(stores.open, force: force) { try self.drillDown($0, baseline: $1, wait: force) }
            gauges.record(stores: stores.open, lag: committer.lag, group: group, leader: leader, clock: clock)
            if let publisher = leader.publisher, let now = leader.groupClock {
                operations.sample(publisher.values, at: now, every: .milliseconds(max(config.kpiEmitIntervalMs, 2000)))
            }
        case .pumpOutbox:
            try relay.pump(outboxSources)
        case .drainOutbox:
            try relay.drain(outboxSources, timeoutMs: 10_000)
        case .snapshotTick:
            snapshots.tick(stores.open)
        case .stop:
            break
        }
    }

    /// What the broker and the group know of the input partitions, for `PartitionStores.assign`.
    private var inputHistory: PartitionStores.InputHistory {
        PartitionStores.InputHistory(watermarks: { [consumer] in try? consumer.watermarks(of: $0) }, groupProgress: { [consumer, logger] in
            do { return try consumer.committed($0) } catch {
                logger.warning("cannot read how far the group got (\(error)); memberships are not published again after a move")
                return [:]
            }
        })
    }

    /// Top contributing sub-groups of a firing drop/rise alert: a scan of the segment's members
    /// in every owned partition, merged with what every other instance of the group scans in
    /// its own (asked over their APIs off this thread: `GroupDrillDowns`; rare: only when an
    /// alert fires).
    /// - Parameter wait: wait for the other instances' answer rather than throw
    ///   `GroupDrillDowns.Pending` (a forced emit, before the partitions leave).
    private func drillDown(_ alert: AlertDefinition, baseline: Double, wait: Bool) throws -> [DrillDownEntry] {
        let others = leader.exchange.view.announced.filter { stores.open[$0.key] == nil }
        let remote: GroupDrillDown.Gathered = others.isEmpty ? ([], []) : try groupDrillDowns.take(for: alert, from: Array(others.values), wait: wait)
        let kind = config.catalog.kpis.first { $0.name == alert.kpi }?.kind ?? .sum
        var accumulator = DrillDownAccumulator(kind: kind)
        let dimensions = DrillDownAccumulator.dimensions(config.catalog)
        for store in stores.open.values {
            try? store.drillDown(segment: alert.segment, kpi: alert.kpi, into: &accumulator, dimensions: dimensions)
        }
        let local = accumulator.memberCount
        for partial in remote.accumulators { accumulator.merge(partial) }
        logger.info("drill-down of \(alert.name): \(local) members in this instance's \(stores.open.count) partitions, \(accumulator.memberCount - local) in \(others.count) partitions of other instances",
                    metadata: ["alert": "\(alert.name)", "segment": "\(alert.segment)"])
        if !remote.missing.isEmpty {
            logger.warning("drill-down of \(alert.name): partitions \(remote.missing.sorted()) could not be asked (their instance serves no API or did not answer); it covers the others")
        }
        return accumulator.ranked(baseline: baseline)
    }
}
