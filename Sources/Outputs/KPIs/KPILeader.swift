import Foundation
import Logging
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceConfig
import ServiceRuntime

/// The global side of KPIs on the commit thread (SPEC §5, §7): every instance announces its
/// partitions' partials and watermarks (`KPIExchange`); the instance that owns partition 0 sums
/// the whole group's and publishes changed KPI values and alert changes, as of the group's
/// watermark (the smallest over every pair of every instance), through partition 0's outbox.
package final class KPILeader {
    private let config: SegmenterConfig
    private let producer: KafkaProducer
    private let clock: any ServiceClock
    private let logger: Logger
    package let exchange: KPIExchange
    /// The KPI chain, while this instance owns partition 0 (its state lives in that database).
    package private(set) var publisher: KPIPublisher?
    /// The input topics' partition count: the leader publishes once each is accounted for.
    private var partitionCount: Int?
    private var lastWaitingLog: ContinuousClock.Instant
    /// Since when the leader has been waiting for partitions to be accounted for.
    private var waitingSince: ContinuousClock.Instant?
    /// The group's watermark as the leader last saw it; never goes backwards.
    package private(set) var groupClock: Instant?
    /// Which segments' KPIs moved since the last publish, and why.
    private var causes: [String: ChangeCause] = [:]

    package init(config: SegmenterConfig, producer: KafkaProducer, partitionCount: Int?, clock: any ServiceClock, logger: Logger) {
        self.config = config
        self.producer = producer
        self.partitionCount = partitionCount
        self.clock = clock
        self.logger = logger.component("kpi-leader")
        exchange = KPIExchange(config: config, producer: producer, clock: clock, logger: logger)
        lastWaitingLog = clock.monotonicNow - .seconds(60)
    }

    package func note(_ moved: [String: ChangeCause]) { causes.merge(moved) { $1 } }

    /// Announces the owned partitions and, on the leader, publishes what changed.
    /// - Returns: the group's watermark as far as this instance knows it (for the gauges).
    @discardableResult
    package func emit(_ stores: [Int32: PartitionStore], force: Bool, drillDown: @escaping DrillDownProvider) throws -> GroupPartials.Watermark {
        // Announced even before any event: the leader waits for every partition to be accounted for.
        try exchange.announce(stores, force: force)
        let leader = stores[0] != nil
        exchange.follow(asLeader: leader)
        ServiceMetrics.kpiLeader.record(leader ? 1 : 0)
        let own = GroupPartials.Watermark(owned: stores.mapValues(\.watermark))
        guard leader else { return own }
        try takeLeadership(stores)
        guard let publisher, let (global, watermark) = try groupPartials(stores) else { return own }
        // Global outputs run on the group's watermark: no KPI or alert is judged at a time some
        // pair's users have not reached yet.
        if let time = watermark.time, groupClock == nil || time > groupClock! { groupClock = time }
        guard let now = groupClock else { return watermark }
        // Step by step on the grid of event time, each partition as of each step (SPEC §7: the
        // same charts and alerts live and in a catch-up), then the values at the watermark.
        let grid = config.kpiGrid
        let last = grid.lastComplete(at: now)
        let count = partitionCount ?? (stores.keys.max().map { Int($0) + 1 } ?? 0)
        let timelines = (0..<Int32(count)).map { partition in
            stores[partition]?.partialsTimeline(after: publisher.foldedBucket) ?? exchange.view.timelines[partition] ?? PartialsTimeline()
        }
        let (steps, skipped) = PartialsFold.steps(after: publisher.foldedBucket, through: last, partitions: timelines)
        if let skipped {
            logger.warning("KPI steps from \(grid.end(of: skipped.lowerBound)) to \(grid.end(of: skipped.upperBound)) skipped: a partition's changes then are no longer known (it ran ahead of the group's watermark further than it keeps, or restarted); the next step includes them")
        }
        let fold = steps.isEmpty && skipped != nil ? .only(PartialsFold.Step(bucket: last, partials: global)) : steps
        let emitted: Int
        do {
            emitted = try publisher.publish(fold, through: last, current: global, now: now, grid: grid, catalog: config.catalog, causes: causes,
                                            alerts: config.alerts, alertTopic: config.topics.alerts, calendar: config.calendar, drillDown: drillDown)
        } catch let pending as GroupDrillDowns.Pending {
            // Nothing was written: the next emit takes the same steps again, with the answer.
            logger.info("KPIs wait one emit: \(pending)", metadata: ["alert": "\(pending.alert)"])
            return watermark
        }
        if let folded = publisher.foldedBucket {
            for store in stores.values { store.forgetBuckets(through: folded) }
            exchange.forgetBuckets(through: folded)
        }
        causes = [:]
        ServiceMetrics.kpiDeltas.increment(by: emitted)
        return watermark
    }

    /// Partitions given up: their announcements are the next owner's to make, and the chain
    /// leaves with partition 0.
    package func release(_ partitions: Set<Int32>, stillOwned: [Int32: PartitionStore]) {
        if stillOwned[0] == nil { publisher = nil }
        exchange.forget(partitions.filter { stillOwned[$0] == nil })
    }

    /// Opens the KPI chain in partition 0's database when this instance got partition 0, and
    /// continues it after what earlier leaders published (read from the deltas topic) before
    /// anything of it is relayed. Retried at the next emit if the topic cannot be read.
    package func takeLeadership(_ stores: [Int32: PartitionStore]) throws {
        guard publisher == nil, let zero = stores[0] else { return }
        let chain = try KPIPublisher(store: zero, topic: config.topics.kpiDeltas)
        var latest: [KPIKey: KPIPublisher.TopicMessage] = [:]
        var read = 0
        let readTo: [Int32: Int64]
        do {
            readTo = try TopicReader(configuration: config.readerKafka("kpi-chain")).readToEnd(config.topics.kpiDeltas, after: chain.deliveredOffsets) { message in
                read += 1
                if let (key, position) = KPIPublisher.chainPosition(of: message.payload), position.seq > latest[key]?.seq ?? 0 { latest[key] = position }
            }
        } catch let error as KafkaError where error.kind == .unknownTopic {
            readTo = [:]  // nothing was ever published
        } catch {
            logger.error("KPI leader: cannot read \(config.topics.kpiDeltas) to continue its chains (\(error)); KPIs wait")
            return
        }
        let (advanced, dropped) = try chain.continueChain(after: latest, readTo: readTo)
        let moved = advanced + dropped > 0 ? " (\(advanced) pairs continue from a later seq, \(dropped) unsent messages superseded)" : ""
        logger.info("KPI leader: continuing the chains of \(config.topics.kpiDeltas) after \(read) messages published since this state's last one\(moved)",
                    metadata: ["topic": "\(config.topics.kpiDeltas)"])
        publisher = chain
    }

    /// The group's partials and watermark as the leader sees them, or nil while some partition
    /// is unaccounted for (its owner has not announced it yet, or the leader is still reading
    /// the announcements).
    private func groupPartials(_ stores: [Int32: PartitionStore]) throws -> ([KPIKey: KPIPartial], GroupPartials.Watermark)? {
        if partitionCount == nil { partitionCount = try? producer.partitionCount(of: config.topics.activity, timeoutMs: 2000) }
        let count = partitionCount ?? (stores.keys.max().map { Int($0) + 1 } ?? 0)
        let caughtUp = try exchange.poll()
        let (global, missing) = exchange.view.global(owned: stores.mapValues(\.partials), partitionCount: count)
        // Owning every partition, the leader needs nobody's announcements.
        if missing.isEmpty && (caughtUp || stores.count >= count) {
            waitingSince = nil
            return (global, exchange.view.watermark(owned: stores.mapValues(\.watermark), partitionCount: count))
        }
        let now = clock.monotonicNow
        let since = waitingSince ?? now
        waitingSince = since
        if now - lastWaitingLog >= .seconds(10) {
            lastWaitingLog = now
            logger.info(caughtUp ? "KPIs wait for partitions \(missing.map(String.init).joined(separator: ", ")) to be announced by their owners"
                                 : "KPIs wait until the announcements of the other instances are read")
        }
        // Owners announce everything at least every 30 s: waiting longer means the reader lost track.
        if now - since >= .seconds(35) {
            waitingSince = nil
            logger.warning("no announcement of partitions \(missing.map(String.init).joined(separator: ", ")) for 35 s: reading the announcements again from the beginning")
            exchange.rereadFromTheBeginning()
        }
        return nil
    }
}
