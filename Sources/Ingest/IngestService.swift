import Foundation
import KafkaIO
import Logging
import SegmenterCore
import SegmenterStore
import ServiceLifecycle
import ServiceConfig
import ServiceRuntime


/// Running totals, readable from other threads for progress lines.
public struct IngestCounters: Sendable {
    public var consumed = 0
    public var applied = 0
    public var duplicates = 0
    public var deadLettered = 0
    /// Of those, valid events older than the dedupe horizon (not applied).
    public var tooOld = 0
    public var keyMismatches = 0
    public var membershipChanges = 0
    public var timersFired = 0
    public var batches = 0
    public var published = 0
}

/// The ingest pipeline: Kafka → decode (this thread) → apply and commit (the commit thread:
/// one SQLite transaction per partition) → outbox → Kafka.
///
/// Two threads because decoding is pure and overlaps with the previous batch's commit; librdkafka's
/// poll blocks, and the cooperative pool is only two threads here. Stops after the current
/// batch when `stop` is set, leaves the group (revocations wait for pending commits), then
/// drains the outbox.
///
/// A swift-service-lifecycle `Service`: `run()` holds the two threads until ingest ends (a
/// failure, or the group's graceful shutdown, which stops it after its current batch).
public final class IngestService: Service, @unchecked Sendable {
    private let config: SegmenterConfig
    private let logger: Logger
    private let decoder: EventDecoder
    private let clock: any ServiceClock
    private let counterLock = NSLock()
    private var totals = IngestCounters()
    private let onBatch: (@Sendable (IngestCounters) -> Void)?
    private let onStarted: (@Sendable (any StoreAccess, Int) -> Void)?

    /// - Parameter clock: the wall and monotonic clocks (tests pass a `ManualClock`).
    /// - Parameter onBatch: progress after each committed batch (logs, `--stop-after-events`).
    /// - Parameter onStarted: called once the commit thread runs, with the way onto it (for
    ///   reconciliation) and the input topics' partition count.
    public init(config: SegmenterConfig, logger: Logger, clock: any ServiceClock = SystemClock(),
                onBatch: (@Sendable (IngestCounters) -> Void)? = nil, onStarted: (@Sendable (any StoreAccess, Int) -> Void)? = nil) {
        self.config = config
        self.logger = logger.component("ingest")
        self.decoder = config.decoder
        self.clock = clock
        health = ServiceHealth(clock: clock)
        self.onBatch = onBatch
        self.onStarted = onStarted
    }

    /// Runs ingest as a task on a thread this service owns (the poll loop blocks in librdkafka),
    /// with the commit thread it starts and joins; returns when ingest ends.
    public func run() async throws {
        let stop = StopSignal()
        let pollThread = DedicatedThreadExecutor(name: "segmenter-poll")
        defer { pollThread.shutdown() }
        try await withGracefulShutdownHandler {
            try await withTaskExecutorPreference(pollThread) { try await self.runOnPreferredExecutor(until: stop) }
        } onGracefulShutdown: {
            stop.stop()
        }
    }

    /// `run(until:)` from a task that prefers the poll thread: it blocks that thread only.
    private nonisolated func runOnPreferredExecutor(until stop: StopSignal) async throws {
        try run(until: stop)
    }

    public var counters: IngestCounters { counterLock.lock(); defer { counterLock.unlock() }; return totals }

    /// When the first poll returned messages: where a throughput figure starts (as a bare
    /// consumer's does), so the first batch's own work is inside the measured time.
    public var firstMessageAt: ContinuousClock.Instant? { counterLock.lock(); defer { counterLock.unlock() }; return firstPolled }
    private var firstPolled: ContinuousClock.Instant?

    /// Liveness and readiness, for `/readyz`.
    public let health: ServiceHealth

    /// Runs until `stop` is set (after the current batch) or ingest fails.
    public func run(until stop: StopSignal) throws {
        try prepareStateDirectory()
        let lock = try StateDirectoryLock(directory: config.stateDirectory)
        defer { lock.release() }
        let producer = try KafkaProducer(configuration: config.kafka)
        let partitionCount = try checkInputTopics(producer)
        if let members = config.topics.members { createMembersTopic(members, partitions: partitionCount, producer: producer) }
        let bridge = RebalanceBridge(health: health)
        let consumer = try KafkaConsumer(configuration: config.kafka, listener: bridge, offsetReset: config.offsetReset)
        let eventTimes = EventTimeBoard(horizon: config.dedupeHorizon)
        let worker = try CommitWorker(config: config, producer: producer, consumer: consumer, partitionCount: partitionCount,
                                      operations: health.operations, eventTimes: eventTimes, clock: clock,
                                      logger: logger) {
            [self] outcome, batch, published, commitNanoseconds in
            ServiceMetrics.record(outcome, consumed: batch.consumed, keyMismatches: batch.keyMismatches, published: published,
                                  commitNanoseconds: commitNanoseconds)
            counterLock.lock()
            totals.consumed += batch.consumed
            totals.applied += outcome.applied
            totals.duplicates += outcome.duplicates
            totals.deadLettered += outcome.deadLettered
            totals.tooOld += outcome.tooOld
            totals.membershipChanges += outcome.membershipChanges
            totals.timersFired += outcome.timersFired
            totals.keyMismatches += batch.keyMismatches
            totals.batches += 1
            totals.published = published
            let snapshot = totals
            counterLock.unlock()
            health.operations.noteConsumed(total: snapshot.consumed)
            health.operations.update { ingest in
                ingest.consumed = snapshot.consumed
                ingest.applied = snapshot.applied
                ingest.duplicates = snapshot.duplicates
                ingest.deadLettered = snapshot.deadLettered
            }
            onBatch?(snapshot)
        }
        bridge.queue = worker.queue
        worker.start()
        onStarted?(CommitThreadAccess(queue: worker.queue), partitionCount ?? 1)
        try consumer.subscribe(to: [config.topics.activity, config.topics.billing])
        let kinds = [config.topics.activity: InputKind.activity, config.topics.billing: InputKind.billing]
        let membership = config.kafka["group.instance.id"].map { "as static member \($0) of" } ?? "in"
        logger.info("consuming \(config.topics.activity) and \(config.topics.billing) from \(config.kafka.bootstrapServers) \(membership) group \(config.kafka.groupID) into \(config.stateDirectory.path)")

        while !stop.isStopped && !worker.queue.isClosed {
            let (messages, errors) = try consumer.poll(maxMessages: config.batchMaxEvents, timeoutMs: config.batchMaxWaitMs)
            if errors.isEmpty { health.polled() }
            for error in errors {
                if let outOfRange = error.outOfRange {
                    try resume(outOfRange, consumer: consumer, worker: worker)
                } else {
                    logger.warning("\(error)")
                }
            }
            if !messages.isEmpty {
                if firstPolled == nil { let now = clock.monotonicNow; counterLock.lock(); firstPolled = now; counterLock.unlock() }
                worker.queue.put(.batch(decode(messages, kinds: kinds, eventTimes: eventTimes)), mergingInto: IngestCommand.merge(limit: config.batchMaxEvents))
            }
        }
        logger.info("stopping: leaving the group, committing what was read, draining the outbox")
        consumer.close()
        worker.finish()
        counterLock.lock(); totals.published = worker.published; counterLock.unlock()
        if let failure = worker.failure { throw failure }
    }

    /// A partition's next offset went out of Kafka while it was consumed (retention overtook
    /// a lagging consumer): continue where `offset_reset` says (see `SkippedInput`), recording
    /// what that skips in the partition's state on the commit thread.
    private func resume(_ outOfRange: OffsetOutOfRange, consumer: KafkaConsumer, worker: CommitWorker) throws {
        let tp = outOfRange.partition
        let (low, high) = try consumer.watermarks(of: tp)
        let policy = config.offsetReset
        guard let (next, skipped) = policy.resume(requested: outOfRange.offset, low: low, high: high) else {
            _ = try SkippedInput.resume(tp, requested: outOfRange.offset, low: low, high: high, policy: policy, store: nil, at: clock.wallNow, logger: logger)
            return
        }
        try consumer.restart(tp, at: next)
        let requested = outOfRange.offset
        worker.queue.put(.exclusive { [logger, clock] session in
            _ = try? SkippedInput.resume(tp, requested: requested, low: low, high: high, policy: policy,
                                         store: session?.stores[tp.partition], at: clock.wallNow, logger: logger)
        })
        _ = skipped
    }

    /// Creates `topics.members` compacted (a table: the latest value per key, tombstones delete)
    /// where the broker answers CreateTopics; an existing topic is left as it is. Where it does
    /// not (librdkafka's mock cluster), the topic appears on first produce with the broker's
    /// defaults: the README says to create it with `cleanup.policy=compact` there.
    private func createMembersTopic(_ name: String, partitions: Int?, producer: KafkaProducer) {
        do {
            try KafkaAdmin.createTopics(using: producer, names: [name], partitions: Int32(partitions ?? 1),
                                        configs: ["cleanup.policy": "compact"], timeoutMs: 5000)
            logger.info("members table topic \(name): present, created cleanup.policy=compact if it was new")
        } catch {
            logger.warning("could not create \(name) (\(error)); create it with cleanup.policy=compact, or it is created on first use with the broker's defaults")
        }
    }

    /// Decodes a polled batch and groups it by partition number (one database each).
    private func decode(_ messages: [ConsumedMessage], kinds: [String: InputKind], eventTimes: EventTimeBoard) -> DecodedBatch {
        let wallClock = clock.wallNow
        var batch = DecodedBatch(polledAt: clock.monotonicNow)
        batch.consumed = messages.count
        var times = eventTimes.view()
        defer { eventTimes.raise(from: times) }
        for message in messages {
            let decoded = decoder.decode(message.payload, from: kinds[message.topic] ?? .activity, wallClock: wallClock)
            // The payload is kept only for a dead letter (it quotes it): an invalid message, or a
            // valid event the dedupe horizon may reject.
            var keepPayload = true
            if case let .success(event) = decoded {
                if let key = message.key, !key.elementsEqual(event.userID.utf8) { batch.keyMismatches += 1 }
                keepPayload = times.mayReject(event.ts, in: TopicPartition(topic: message.topic, partition: message.partition))
            }
            let keep = keepPayload ? message.payload : []
            batch.byPartition[message.partition, default: []].append(DecodedRecord(
                topic: message.topic, partition: message.partition, offset: message.offset,
                key: message.key, payload: keep, decoded: decoded))
        }
        return batch
    }

    private func prepareStateDirectory() throws {
        let path = config.stateDirectory.path
        do {
            try FileManager.default.createDirectory(at: config.stateDirectory, withIntermediateDirectories: true)
        } catch {
            throw ServiceError("cannot create the state directory \(path): \(error.localizedDescription)")
        }
        guard FileManager.default.isWritableFile(atPath: path) else {
            throw ServiceError("the state directory \(path) is not writable")
        }
    }

    /// Fails fast on an unreachable broker, and on input topics that are not co-partitioned
    /// (a user's activity and billing must land in the same partition number).
    /// - Returns: the partition count, if the topics exist.
    private func checkInputTopics(_ producer: KafkaProducer) throws -> Int? {
        let servers = config.kafka.bootstrapServers
        var counts: [String: Int] = [:]
        for topic in [config.topics.activity, config.topics.billing] {
            do {
                counts[topic] = try producer.partitionCount(of: topic, timeoutMs: 10_000)
            } catch let error as KafkaError where error.kind == .brokerUnreachable {
                throw ServiceError("cannot reach Kafka at \(servers): \(error)")
            } catch {
                logger.warning("input topic \(topic) not found yet (\(error)); it will be consumed once it exists")
            }
        }
        if let a = counts[config.topics.activity], let b = counts[config.topics.billing], a != b {
            throw ServiceError("topics \(config.topics.activity) (\(a) partitions) and \(config.topics.billing) (\(b) partitions) "
                + "must have the same partition count: a user's activity and billing events must share a partition")
        }
        return counts[config.topics.activity] ?? counts[config.topics.billing]
    }
}

/// Runs inside `poll` on the poll thread and forwards group changes to the commit thread,
/// waiting for its answer: the commit thread owns the databases that hold the offsets.
final class RebalanceBridge: RebalanceListener, @unchecked Sendable {
    var queue: WorkQueue<IngestCommand>?
    let health: ServiceHealth
    private var assigned: Set<TopicPartition> = []

    init(health: ServiceHealth) { self.health = health }

    func partitionsAssigned(_ partitions: [TopicPartition]) -> [TopicPartition: StartOffset] {
        let reply = Reply<[TopicPartition: StartOffset]>()
        guard queue?.put(.assigned(partitions, reply)) == true else { return [:] }
        guard let starts = reply.wait() else { return [:] }
        assigned.formUnion(partitions)
        health.assignment(count: assigned.count)
        return starts
    }

    func partitionsRevoked(_ partitions: [TopicPartition]) {
        assigned.subtract(partitions)
        health.assignment(count: assigned.count)
        let reply = Reply<Bool>()
        guard queue?.put(.revoked(partitions, reply)) == true else { return }
        _ = reply.wait()
    }
}
