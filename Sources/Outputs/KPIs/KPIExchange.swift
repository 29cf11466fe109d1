import Foundation
import Logging
import KafkaIO
import SegmenterCore
import SegmenterStore
import ServiceConfig
import ServiceRuntime

/// Makes KPIs global when several instances share one consumer group (SPEC §5, §7).
///
/// Each instance holds KPI partials only for the partitions it owns. Every instance announces
/// each owned partition's partials (absolute values) to an internal topic whenever they changed,
/// at most once per KPI emit interval, and all of them every `heartbeat`. The instance that owns
/// input partition 0 is the **KPI leader**: it reads that topic from the beginning, adds the
/// latest announcement of every partition it does not own to its own live partials, and alone
/// publishes KPI deltas and alerts, so each (segment, kpi) pair has one `seq` chain. It publishes
/// only once every partition is accounted for, so a partition whose owner has not spoken yet is
/// never reported as having lost its members.
///
/// Used only on the commit thread.
package final class KPIExchange {
    private let topic: String
    private let producer: KafkaProducer
    private let readerConfiguration: KafkaConfiguration
    private let instance: String
    private let api: String?
    private let group: String
    /// Announcements of another consumer group seen on the topic (a shared topic name).
    private var foreign = 0
    private let heartbeat: Duration
    private let logger: Logger
    private var lastAnnounced: [Int32: (partials: [KPIKey: KPIPartial], watermark: PairWatermark)] = [:]
    private var lastHeartbeat: ContinuousClock.Instant
    private let clock: any ServiceClock
    private var reader: KafkaConsumer?
    /// Per topic partition, the offset the reader must pass before the leader may publish (the
    /// high watermarks when it started reading); nil once caught up.
    private var catchUp: [TopicPartition: Int64]?
    /// Whether the reader has been given the topic's partitions.
    private var reading = false
    package private(set) var view: GroupPartials
    private let grid: KPIGrid

    init(config: SegmenterConfig, producer: KafkaProducer, heartbeat: Duration = .seconds(30), clock: any ServiceClock, logger: Logger) {
        self.clock = clock
        lastHeartbeat = clock.monotonicNow
        self.topic = config.topics.kpiPartials
        self.producer = producer
        readerConfiguration = config.readerKafka("kpi-leader")
        group = config.kafka.groupID
        instance = config.instanceName
        api = config.httpAdvertisedURL
        self.heartbeat = heartbeat
        self.logger = logger.component("kpi-exchange")
        grid = config.kpiGrid
        view = GroupPartials(grid: config.kpiGrid)
    }

    /// The buckets through `bucket` are published: the timelines forget their changes.
    func forgetBuckets(through bucket: Int64) { view.forget(through: bucket) }

    var isCaughtUp: Bool { reading && catchUp == nil }

    /// Announces every owned partition whose partials or watermark changed since its last
    /// announcement (all of them when the heartbeat is due or `force`d). A lost announcement
    /// costs nothing: the state is durable and the next change or heartbeat announces it again.
    func announce(_ stores: [Int32: PartitionStore], force: Bool = false) throws {
        let now = clock.monotonicNow
        let all = force || now - lastHeartbeat >= heartbeat
        if all { lastHeartbeat = now }
        for (partition, store) in stores {
            let partials = store.partials.values
            let watermark = store.watermark
            guard all || lastAnnounced[partition].map({ partials != $0.partials || Self.moved(watermark, since: $0.watermark) }) ?? true else { continue }
            var announcement = PartialsAnnouncement(partition: partition, partials: partials, group: group, instance: instance, api: api,
                                                    clock: watermark.clock, caughtUp: watermark.caughtUp)
            if let clock = watermark.clock {
                // The recent buckets' changes, so the leader reads this partition's partials as of their ends.
                let grid = store.segments.kpiGrid
                // The whole window with the heartbeat (a leader that just started reading), else what
                // came since the last announcement (measured: whole windows every emit cost more than
                // the batches), overlapping it so the leader's knowledge stays contiguous.
                var from = grid.bucket(of: clock.adding(seconds: -PartialsAnnouncement.bucketWindowSeconds))
                if !all, let previous = lastAnnounced[partition]?.watermark.clock.map(grid.bucket(of:)) { from = max(from, previous - 1) }
                let timeline = store.partialsTimeline(after: from - 1)
                announcement.bucketsFrom = max(timeline.coveredFrom ?? from, from)
                announcement.buckets = timeline.deltas
                // Another instance leads: what fell out of the window is not announced again.
                if stores[0] == nil { store.forgetBuckets(through: from - 1) }
            }
            try producer.produceWaiting(topic: topic, key: Array(PartialsAnnouncement.key(partition: partition).utf8),
                                        value: announcement.encoded())
            lastAnnounced[partition] = (partials, watermark)
        }
    }

    /// Whether a pair's watermark moved enough to announce: its event time or caught-up state
    /// changed, or its clock moved 10 s or more (the hybrid clock moves every moment; the group's
    /// time may trail it by that much, never run ahead of it).
    static func moved(_ watermark: PairWatermark, since last: PairWatermark) -> Bool {
        guard watermark.events == last.events, watermark.caughtUp == last.caughtUp else { return true }
        guard let clock = watermark.clock, let before = last.clock else { return watermark.clock != last.clock }
        return clock.nanoseconds - before.nanoseconds >= 10 * Instant.nanosPerSecond
    }

    /// Starts reading the topic afresh (from its beginning): when partitions stay unaccounted
    /// for although their owners announce them, the reader may have missed the topic's
    /// partitions (seen once with a topic created a moment earlier on the dev broker).
    func rereadFromTheBeginning() {
        guard reader != nil else { return }
        reader?.close()
        reader = nil
        follow(asLeader: true)
    }

    /// Forgets what was announced for partitions given up (a later owner of them announces anew).
    func forget(_ partitions: some Sequence<Int32>) {
        for partition in partitions { lastAnnounced[partition] = nil }
    }

    /// Starts reading the topic (from its beginning) when this instance became the KPI leader,
    /// stops when it no longer is.
    func follow(asLeader leader: Bool) {
        guard leader != (reader != nil) else { return }
        if leader {
            do {
                reader = try KafkaConsumer(configuration: readerConfiguration, listener: nil)
                reading = false
                view = GroupPartials(grid: grid)
                logger.info("KPI leader (this instance owns partition 0): reading \(topic) for the other instances' KPI partials")
            } catch {
                logger.info("cannot read \(topic) yet (\(error)); KPIs wait")
            }
        } else {
            reader?.close()
            reader = nil
            reading = false
            catchUp = nil
            view = GroupPartials(grid: grid)
            logger.info("no longer the KPI leader (partition 0 moved): another instance publishes KPIs and alerts")
        }
    }

    /// Reads what has arrived. The first call after `follow(asLeader: true)` assigns every
    /// partition of the topic once it exists. Returns whether the leader has caught up.
    @discardableResult
    func poll() throws -> Bool {
        guard let reader else { return false }
        if !reading {
            // Not started: find the topic's partitions and where their ends are now (asking the
            // reader's own handle, so its metadata knows a topic created a moment ago).
            guard let count = try? reader.partitionCount(of: topic, timeoutMs: 2000) else { return false }
            var ends: [TopicPartition: Int64] = [:]
            var starts: [TopicPartition: StartOffset] = [:]
            for number in 0..<Int32(count) {
                let tp = TopicPartition(topic: topic, partition: number)
                let (low, high) = try reader.watermarks(of: tp, timeoutMs: 5000)
                if high > low { ends[tp] = high }
                starts[tp] = .beginning
            }
            try reader.assign(starts)
            reading = true
            catchUp = ends
        }
        while true {
            let (messages, errors) = try reader.poll(maxMessages: 10_000, timeoutMs: 0)
            for error in errors { logger.info("reading \(topic): \(error)") }
            for message in messages {
                if let announcement = PartialsAnnouncement.decode(message.payload) {
                    if announcement.group == group {
                        view.receive(announcement)
                    } else if foreign == 0 {
                        foreign += 1
                        logger.info("\(topic) also carries announcements of group \(announcement.group); they are ignored (give each deployment its own topic)")
                    }
                }
                let tp = TopicPartition(topic: message.topic, partition: message.partition)
                if let end = catchUp?[tp], message.offset + 1 >= end { catchUp?[tp] = nil }
            }
            if messages.count < 10_000 { break }
        }
        if catchUp?.isEmpty == true {
            catchUp = nil
            logger.info("KPI leader caught up with \(topic): \(view.announced.count) partitions announced")
        }
        return isCaughtUp
    }
}
