import Foundation
import KafkaIO
import SegmenterCore
import SegmenterStore

/// What the poll thread hands the commit thread, in consumption order.
enum IngestCommand: @unchecked Sendable {
    /// A decoded batch, grouped by partition number.
    case batch(DecodedBatch)
    case assigned([TopicPartition], Reply<[TopicPartition: StartOffset]>)
    /// Answered only after every earlier batch is committed, so a revoked partition's stored
    /// offsets are final before the group hands it to someone else.
    case revoked([TopicPartition], Reply<Bool>)
    /// Work on the owned partition databases between two batches (reconciliation); called
    /// with nil if the commit thread stopped before getting to it.
    case exclusive(@Sendable (StoreSession?) -> Void)
}

struct DecodedBatch {
    var byPartition: [Int32: [DecodedRecord]] = [:]
    var consumed = 0
    var keyMismatches = 0
    /// The greatest `ts` of a valid event in the batch: the event clock's next reading.
    var latestEventTime: Instant?
    /// When the batch's first messages were polled (the earliest, once batches merge).
    var polledAt = ContinuousClock.now

    /// Appends a later batch (records stay in offset order per partition).
    mutating func append(_ later: DecodedBatch) {
        for (partition, records) in later.byPartition { byPartition[partition, default: []].append(contentsOf: records) }
        consumed += later.consumed
        keyMismatches += later.keyMismatches
        if let time = later.latestEventTime, latestEventTime == nil || time > latestEventTime! { latestEventTime = time }
        polledAt = min(polledAt, later.polledAt)
    }
}

extension IngestCommand {
    /// Merges a batch into a waiting batch while the result stays within `limit` messages.
    static func merge(limit: Int) -> (inout IngestCommand, IngestCommand) -> Bool {
        { waiting, new in
            guard case var .batch(pending) = waiting, case let .batch(more) = new, pending.consumed + more.consumed <= limit else { return false }
            pending.append(more)
            waiting = .batch(pending)
            return true
        }
    }
}

/// The commit thread: owns the partition databases, the instance clock, the KPI publisher, the
/// KPI exchange with other instances, and the outbox relay.
///
/// Per batch: 1. Every owned partition commits one transaction side by side: its events, its
/// pair's watermark (SPEC §3: from its own inputs' progress, never another pair's), their
/// re-evaluation, and its due timers (partitions without events only move their watermark and
/// fire timers). 2. At most once per emit interval, the partitions' KPI partials and watermarks
/// are announced to the group and, on the KPI leader, summed over the whole group and changed
/// values published as of the group's watermark. 3. The relay publishes outbox rows.
final class CommitWorker: @unchecked Sendable {
    let queue = WorkQueue<IngestCommand>(capacity: 2)
    private let config: SegmenterConfig
    private let stores: PartitionStores
    private let relay: OutboxRelay
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    /// The KPI chain, while this instance owns partition 0 (its state lives in that database).
    private var publisher: KPIPublisher?
    private let exchange: KPIExchange
    private let snapshots: StateSnapshots
    /// The input topics' partition count: the leader publishes once each is accounted for.
    private var partitionCount: Int?
    private var lastWaitingLog = ContinuousClock.now - .seconds(60)
    /// Since when the leader has been waiting for partitions to be accounted for.
    private var waitingSince: ContinuousClock.Instant?
    private let log: (String) -> Void
    private let report: (BatchOutcome, DecodedBatch, Int, Int64) -> Void
    private let finished = DispatchSemaphore(value: 0)
    private(set) var failure: Error?

    /// The group's watermark as this instance last saw it: the leader's KPIs and alerts run on
    /// it (SPEC §3). Never goes backwards.
    private(set) var groupClock: Instant?
    private var kpiCauses: [String: ChangeCause] = [:]
    private var lastEmit = ContinuousClock.now
    private let operations: OperationalState
    /// The next offset to consume per owned input partition, as last committed (for the lag).
    private var nextOffsets: [TopicPartition: Int64] = [:]
    private var lastSlowGauges = ContinuousClock.now - .seconds(60)

    /// Seeded with each assigned partition's event time, for the poll thread (see `EventTimeBoard`).
    private let eventTimes: EventTimeBoard

    init(config: SegmenterConfig, producer: KafkaProducer, consumer: KafkaConsumer, partitionCount: Int?,
         operations: OperationalState, eventTimes: EventTimeBoard, log: @escaping (String) -> Void,
         report: @escaping (BatchOutcome, DecodedBatch, Int, Int64) -> Void) throws {
        self.config = config
        self.producer = producer
        self.partitionCount = partitionCount
        self.log = log
        self.exchange = KPIExchange(config: config, producer: producer, log: log)
        self.snapshots = StateSnapshots(config: config, producer: producer, log: log)
        self.operations = operations
        self.eventTimes = eventTimes
        self.stores = PartitionStores(config: config, partitionCount: partitionCount, log: log)
        self.relay = OutboxRelay(producer: producer)
        self.consumer = consumer
        self.report = report
        relay.watchedTopic = config.topics.kpiDeltas
        relay.onWatchedDelivery = { [weak self] partition, offset in self?.publisher?.noteDelivered(partition: partition, offset: offset) }
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
        while true {
            let command = queue.take(timeout: 0.05)
            var polledAt: ContinuousClock.Instant?
            switch command {
            case let .batch(batch)?:
                try commit(batch)
                polledAt = batch.polledAt
            case let .assigned(partitions, reply)?:
                let starts = try stores.assign(partitions, snapshots: snapshots, history: inputHistory)
                for store in stores.open.values {
                    eventTimes.seed(partition: store.partition, eventTimes: try store.eventTimes(), floor: try store.evidenceFloor())
                }
                reply.send(starts)
                try takeKPILeadership()
            case let .revoked(partitions, reply)?:
                // Publish what these partitions owe before giving them up: their next owner (or
                // our next start) would otherwise send again the rows still in flight.
                try emitKPIs(force: true)
                try relay.drain(outboxSources, timeoutMs: 10_000)
                // The partitions' final announcements reach the KPI leader before a new owner's.
                try? producer.flush(timeoutMs: 5_000)
                stores.revoke(partitions)
                if stores.open[0] == nil { publisher = nil }
                let released = Set(partitions.map(\.partition)).filter { stores.open[$0] == nil }
                exchange.forget(released)
                snapshots.forget(released)
                for tp in partitions { nextOffsets[tp] = nil }
                relay.forget(partitionsNotIn: outboxSources)
                reply.send(true)
            case let .exclusive(body)?:
                let session = StoreSession(stores: stores.open, now: PairWatermark.group(stores.open.values.map(\.watermark)))
                body(session)
                kpiCauses.merge(session.kpiCauses) { $1 }
                ServiceMetrics.recordMembershipChanges(session.membershipChanges)
            case nil:
                if queue.isClosed {
                    try emitKPIs(force: true)
                    try relay.drain(outboxSources, timeoutMs: 10_000)
                    return
                }
                // Nothing to consume: a pair whose inputs are now read to their end stops being
                // held back, and (hybrid) a caught-up pair follows the wall clock.
                try commitEverywhere([:])
            }
            try emitKPIs(force: false)
            try relay.pump(outboxSources)
            snapshots.tick(stores.open)
            if let polledAt { ServiceMetrics.pollToOutput.record(duration: ContinuousClock.now - polledAt) }
        }
    }

    /// What the broker and the group know of the input partitions, for `PartitionStores.assign`.
    private var inputHistory: PartitionStores.InputHistory {
        PartitionStores.InputHistory(earliest: { [consumer] in try? consumer.watermarks(of: $0).low }, groupProgress: { [consumer, log] in
            do { return try consumer.committed($0) } catch {
                log("cannot read how far the group got (\(error)); memberships are not published again after a move")
                return [:]
            }
        })
    }

    private func commit(_ batch: DecodedBatch) throws {
        let started = ContinuousClock.now
        let total = try commitEverywhere(batch.byPartition)
        let took = ContinuousClock.now - started
        report(total, batch, relay.published, took.components.seconds * 1_000_000_000 + took.components.attoseconds / 1_000_000_000)
    }

    /// One transaction per owned partition, side by side: partition databases are independent
    /// (own file, connection and cache), and each store is touched by one thread at a time.
    @discardableResult
    private func commitEverywhere(_ byPartition: [Int32: [DecodedRecord]]) throws -> BatchOutcome {
        let receivedAt = Instant.wallClock()
        let wallClock = config.clock == .hybrid ? receivedAt : nil
        for partition in byPartition.keys { _ = try stores.store(for: partition) }
        let work = stores.open.map { (store: $0.value, records: byPartition[$0.key] ?? [], ends: inputEnds(of: $0.key)) }
        let outcomes = UnsafeMutableBufferPointer<Result<BatchOutcome, Error>>.allocate(capacity: work.count)
        defer { outcomes.deallocate() }
        nonisolated(unsafe) let slots = outcomes
        DispatchQueue.concurrentPerform(iterations: work.count) { index in
            let item = work[index]
            (slots.baseAddress! + index).initialize(to: Result {
                if item.records.isEmpty { return try item.store.advance(inputEnds: item.ends, wallClock: wallClock) }
                return try item.store.commit(item.records, receivedAt: receivedAt, inputEnds: item.ends, wallClock: wallClock)
            })
        }
        defer { _ = outcomes.baseAddress.map { $0.deinitialize(count: work.count) } }
        var committed: [TopicPartition: Int64] = [:]
        var total = BatchOutcome()
        for (index, item) in work.enumerated() {
            let outcome = try outcomes[index].get()
            total.add(outcome)
            kpiCauses.merge(outcome.kpiCauses) { $1 }
            for (topic, next) in outcome.nextOffsets {
                committed[TopicPartition(topic: topic, partition: item.store.partition)] = next
                nextOffsets[TopicPartition(topic: topic, partition: item.store.partition)] = next
            }
        }
        consumer.commitAsync(committed)  // informational; the truth is in SQLite
        return total
    }

    /// The end offsets of a partition's input topics as the consumer last saw them (no round trip).
    private func inputEnds(of partition: Int32) -> BatchProcessor.InputEnds {
        var ends: [String: Int64] = [:]
        for topic in [config.topics.activity, config.topics.billing] {
            ends[topic] = consumer.cachedHighWatermark(of: TopicPartition(topic: topic, partition: partition))
        }
        return .known(ends)
    }

    /// Top contributing sub-groups of a firing drop/rise alert: a scan of the segment's members
    /// in every owned partition (rare: only when an alert fires).
    private func drillDown(_ alert: AlertDefinition, baseline: Double) -> [DrillDownEntry] {
        let kind = config.catalog.kpis.first { $0.name == alert.kpi }?.kind ?? .sum
        var accumulator = DrillDownAccumulator(kind: kind)
        let dimensions = DrillDownAccumulator.dimensions(config.catalog)
        for store in stores.open.values {
            try? store.drillDown(segment: alert.segment, kpi: alert.kpi, into: &accumulator, dimensions: dimensions)
        }
        return accumulator.ranked(baseline: baseline)
    }

    /// Lag, outbox depth and age, and (every 15 s, as they scan) timers and state size.
    private func recordOperationalGauges(_ group: GroupPartials.Watermark) {
        var lag: [String: Int64] = [:]
        for (tp, next) in nextOffsets {
            if let high = consumer.cachedHighWatermark(of: tp) { lag["\(tp.topic)/\(tp.partition)"] = max(high - next, 0) }
        }
        let sources = outboxSources
        let depth = sources.values.reduce(0) { $0 + ((try? $1.outboxDepth()) ?? 0) }
        let oldest = sources.values.compactMap { try? $0.outboxOldest() }.min()
        let wall = Instant.wallClock()
        let slow = ContinuousClock.now - lastSlowGauges >= .seconds(15)
        if slow { lastSlowGauges = ContinuousClock.now }
        let timers = slow ? stores.open.values.reduce(0) { $0 + ((try? $1.timerCount()) ?? 0) } : nil
        let bytes = slow ? Self.stateBytes(config.stateDirectory) : nil
        operations.update { ingest in
            ingest.lag = lag
            ingest.outboxDepth = depth
            ingest.now = publisher != nil ? groupClock : group.time
            ingest.pairs = stores.open.mapValues(\.watermark)
            ingest.heldBackBy = group.heldBackBy
            ingest.kpiLeader = publisher != nil
            if let timers { ingest.timers = timers }
            if let bytes { ingest.stateBytes = bytes }
        }
        ServiceMetrics.recordGauges(operations.snapshot, alerts: (publisher?.alertStatus ?? [:]).mapValues { $0.state == .firing })
        ServiceMetrics.outboxAge.record(oldest.map { Double(wall.nanoseconds - $0.nanoseconds) / 1e9 } ?? 0)
    }

    /// Bytes of the state directory's files (databases and their WALs).
    static func stateBytes(_ directory: URL) -> Int64 {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.reduce(0) { total, name in
            let size = (try? FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(name).path)[.size] as? Int64) ?? 0
            return total + (size ?? 0)
        }
    }

    /// Announces the owned partitions' partials and, on the KPI leader, publishes changed global
    /// KPI values, at most once per emit interval (coalescing), or now when `force`d (before
    /// giving partitions away, on stop).
    private func emitKPIs(force: Bool) throws {
        // Without partitions there is nothing to sum: publishing would claim every KPI fell to zero.
        guard !stores.open.isEmpty else { return }
        guard force || ContinuousClock.now - lastEmit >= .milliseconds(config.kpiEmitIntervalMs) else { return }
        lastEmit = ContinuousClock.now
        // Announced even before any event: the leader waits for every partition to be accounted for.
        try exchange.announce(stores.open, force: force)
        let leader = stores.open[0] != nil
        exchange.follow(asLeader: leader)
        ServiceMetrics.kpiLeader.record(leader ? 1 : 0)
        var group = GroupPartials.Watermark(owned: stores.open.mapValues(\.watermark))
        defer { recordOperationalGauges(group) }
        guard leader else { return }
        try takeKPILeadership()
        guard let publisher, let (global, watermark) = try groupPartials() else { return }
        group = watermark
        // Global outputs run on the group's watermark: no KPI or alert is judged at a time some
        // pair's users have not reached yet.
        if let time = watermark.time, groupClock == nil || time > groupClock! { groupClock = time }
        guard let now = groupClock else { return }
        let emitted = try publisher.publish(catalog: config.catalog, partials: global, now: now, causes: kpiCauses, alerts: config.alerts,
                              alertTopic: config.topics.alerts, calendar: config.calendar, drillDown: drillDown)
        kpiCauses = [:]
        ServiceMetrics.kpiDeltas.increment(by: emitted)
        operations.sample(publisher.values, at: now, every: .milliseconds(max(config.kpiEmitIntervalMs, 2000)))
    }

    /// Opens the KPI chain in partition 0's database when this instance got partition 0, and
    /// continues it after what earlier leaders published (read from the deltas topic) before
    /// anything of it is relayed. Retried at the next emit if the topic cannot be read.
    private func takeKPILeadership() throws {
        guard publisher == nil, let zero = stores.open[0] else { return }
        let chain = try KPIPublisher(store: zero, topic: config.topics.kpiDeltas)
        var latest: [KPIKey: KPIPublisher.TopicMessage] = [:]
        var read = 0
        let readTo: [Int32: Int64]
        do {
            readTo = try TopicReader(configuration: config.readerKafka("kpi-chain")).readToEnd(config.topics.kpiDeltas, after: chain.deliveredOffsets) { message in
                read += 1
                if let (key, position) = KPIPublisher.chainPosition(of: message.payload), position.seq > latest[key]?.seq ?? 0 { latest[key] = position }
            }
        } catch let error as KafkaError where error.codeName.contains("UNKNOWN_TOPIC") {
            readTo = [:]  // nothing was ever published
        } catch {
            log("KPI leader: cannot read \(config.topics.kpiDeltas) to continue its chains (\(error)); KPIs wait")
            return
        }
        let (advanced, dropped) = try chain.continueChain(after: latest, readTo: readTo)
        log("KPI leader: continuing the chains of \(config.topics.kpiDeltas) after \(read) messages published since this state's last one"
            + (advanced + dropped > 0 ? " (\(advanced) pairs continue from a later seq, \(dropped) unsent messages superseded)" : ""))
        publisher = chain
    }

    /// The group's partials as the leader sees them, or nil while some partition is unaccounted
    /// for (its owner has not announced it yet, or the leader is still reading the announcements).
    private func groupPartials() throws -> ([KPIKey: KPIPartial], GroupPartials.Watermark)? {
        if partitionCount == nil { partitionCount = try? producer.partitionCount(of: config.topics.activity, timeoutMs: 2000) }
        let count = partitionCount ?? (stores.open.keys.max().map { Int($0) + 1 } ?? 0)
        let caughtUp = try exchange.poll()
        let (global, missing) = exchange.view.global(owned: stores.open.mapValues(\.partials), partitionCount: count)
        // Owning every partition, the leader needs nobody's announcements.
        if missing.isEmpty && (caughtUp || stores.open.count >= count) {
            waitingSince = nil
            return (global, exchange.view.watermark(owned: stores.open.mapValues(\.watermark), partitionCount: count))
        }
        let since = waitingSince ?? ContinuousClock.now
        waitingSince = since
        if ContinuousClock.now - lastWaitingLog >= .seconds(10) {
            lastWaitingLog = ContinuousClock.now
            log(caughtUp ? "KPIs wait for partitions \(missing.map(String.init).joined(separator: ", ")) to be announced by their owners"
                         : "KPIs wait until the announcements of the other instances are read")
        }
        // Owners announce everything at least every 30 s: waiting longer means the reader lost track.
        if ContinuousClock.now - since >= .seconds(35) {
            waitingSince = nil
            log("no announcement of partitions \(missing.map(String.init).joined(separator: ", ")) for 35 s: reading the announcements again from the beginning")
            exchange.rereadFromTheBeginning()
        }
        return nil
    }
}
