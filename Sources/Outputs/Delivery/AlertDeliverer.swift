import Foundation
import KafkaIO
import Logging
import Metrics
import SegmenterCore
import ServiceLifecycle
import ServiceConfig
import ServiceRuntime

/// Sends every alert state change on the alerts topic to Alertmanager and a webhook
/// (`alerts.deliver`), on its own thread, so a slow or failing receiver never holds ingest up.
///
/// The alerts topic is the outbox: the delivery consumer group (`GROUP-alert-delivery`, one
/// member per instance, so each change is delivered by one) commits a change's offset only
/// once every target took it or it was dead-lettered. A change being retried when the process
/// stops is delivered again after the restart (at least once: `X-Segmenter-Delivery` names the
/// change, the same on every try, for receivers that deduplicate).
///
/// Each assigned partition is read from its beginning: changes before the committed offset only
/// rebuild which alerts fire (Alertmanager forgets an alert not sent again within its
/// `resolve_timeout`, so firing ones are re-sent every `resend_interval`). Without a committed
/// offset (delivery just configured), history from before this process started is not sent.
package final class AlertDeliverer: RebalanceListener, @unchecked Sendable {
    private struct Firing { var notice: AlertNotice; var partition: Int32; var startsAt: Instant }

    private let config: SegmenterConfig
    private let delivery: AlertDeliveryConfig
    private let logger: Logger
    private let clock: any ServiceClock
    private let http: DeliveryHTTP
    private let dashboard: String?
    private let severities: [String: String]
    /// Changes older than this are history when nothing is committed (see `AlertDeliveryStatus`).
    private let deliveringSinceMs: Int64
    /// Set in the rebalance callback, read after `poll` returns (the same thread).
    private var newlyAssigned: [TopicPartition] = []
    /// Per owned partition, the first offset not yet delivered (nil: still being looked up).
    private var deliverFrom: [TopicPartition: Int64] = [:]
    private var firing: [String: Firing] = [:]
    private var status = AlertDeliveryStatus()
    private var lastResend: ContinuousClock.Instant

    package init(config: SegmenterConfig, delivery: AlertDeliveryConfig, logger: Logger, clock: any ServiceClock = SystemClock()) {
        self.config = config
        self.delivery = delivery
        self.logger = logger.component("alert-delivery")
        self.clock = clock
        http = DeliveryHTTP(timeoutSeconds: delivery.timeoutSeconds)
        dashboard = config.httpAdvertisedURL
        severities = Dictionary(config.alerts.map { ($0.name, $0.severity) }) { $1 }
        lastResend = clock.monotonicNow
        status = AlertDeliveryStatus.read(directory: config.stateDirectory) ?? AlertDeliveryStatus()
        deliveringSinceMs = status.deliveringSinceMs ?? clock.wallNow.nanoseconds / 1_000_000 - 60_000
        status.deliveringSinceMs = deliveringSinceMs
        for target in delivery.targetNames {
            for outcome in ["delivered", "failed", "dead_lettered"] {
                Counter(label: "segmenter_alert_deliveries_total", dimensions: [("target", target), ("outcome", outcome)]).increment(by: 0)
            }
        }
    }

    package func partitionsAssigned(_ partitions: [TopicPartition]) -> [TopicPartition: StartOffset] {
        newlyAssigned += partitions
        return Dictionary(uniqueKeysWithValues: partitions.map { ($0, StartOffset.beginning) })
    }

    package func partitionsRevoked(_ partitions: [TopicPartition]) {
        for tp in partitions { deliverFrom[tp] = nil }
        let gone = Set(partitions.map(\.partition))
        firing = firing.filter { !gone.contains($0.value.partition) }
    }

    /// Delivers until `stop` is set; a change being retried then stays uncommitted.
    func run(until stop: StopSignal) throws {
        let producer = try KafkaProducer(configuration: config.kafka)
        // Created here if new, so the group gets its partitions without waiting for the first alert.
        try? KafkaAdmin.createTopics(using: producer, names: [config.topics.alerts], partitions: 1, timeoutMs: 5000)
        var kafka = config.readerKafka("alert-delivery")
        kafka.properties["topic.metadata.refresh.interval.ms"] = "5000"
        let consumer = try KafkaConsumer(configuration: kafka, listener: self, timestamps: true)
        defer { consumer.close() }
        try consumer.subscribe(to: [config.topics.alerts])
        saveStatus()
        logger.info("alert delivery to \(delivery.targetNames.joined(separator: " and ")) from \(config.topics.alerts)")
        while !stop.isStopped {
            let (messages, _) = try consumer.poll(maxMessages: 100, timeoutMs: 500)
            try lookUpStarts(consumer)
            for message in messages {
                let tp = TopicPartition(topic: message.topic, partition: message.partition)
                guard let from = deliverFrom[tp], let notice = AlertNotice(payload: message.payload) else { continue }
                remember(notice, partition: message.partition)
                guard message.offset >= from else { continue }
                // With nothing committed, what the topic held before delivery was set up is history.
                let isHistory = from == 0 && (message.timestampMs ?? .max) < deliveringSinceMs
                if !isHistory { guard deliver(notice, message: message, producer: producer, stop: stop) else { return } }
                deliverFrom[tp] = message.offset + 1
                consumer.commitAsync([tp: message.offset + 1])
                status.nextOffsets = (status.nextOffsets ?? [:]).merging(["\(tp.topic)/\(tp.partition)": message.offset + 1]) { $1 }
                saveStatus()
            }
            if clock.monotonicNow - lastResend >= .seconds(delivery.resendIntervalSeconds) { resendFiring() }
            _ = producer.poll(timeoutMs: 0)
        }
        try? producer.flush(timeoutMs: 5000)
    }

    /// The committed offsets of partitions just assigned: below them, changes were delivered.
    private func lookUpStarts(_ consumer: KafkaConsumer) throws {
        guard !newlyAssigned.isEmpty else { return }
        let partitions = newlyAssigned
        newlyAssigned = []
        let committed = try consumer.committed(partitions)
        for tp in partitions { deliverFrom[tp] = committed[tp] ?? status.nextOffsets?["\(tp.topic)/\(tp.partition)"] ?? 0 }
    }

    private func remember(_ notice: AlertNotice, partition: Int32) {
        if notice.firing {
            firing[notice.alert] = Firing(notice: notice, partition: partition, startsAt: firing[notice.alert]?.startsAt ?? notice.asOf)
        } else {
            firing[notice.alert] = nil
        }
    }

    /// Every target, retried with backoff until it takes the change, refuses it, or runs out of
    /// tries (then the dead-letter topic has it). False: stopped while retrying.
    private func deliver(_ notice: AlertNotice, message: ConsumedMessage, producer: KafkaProducer, stop: StopSignal) -> Bool {
        let severity = severities[notice.alert] ?? "warning"
        let source = "\(message.topic)[\(message.partition)]@\(message.offset)"
        var sends: [(name: String, url: URL, body: [UInt8], headers: [(String, String)])] = []
        if let base = delivery.alertmanager {
            let alert = notice.alertmanagerAlert(severity: severity, dashboard: dashboard, startsAt: firing[notice.alert]?.startsAt,
                                                 now: clock.wallNow)
            sends.append(("alertmanager", base.appendingPathComponent("api/v2/alerts"), Self.json([alert]), []))
        }
        if let webhook = delivery.webhook {
            let body = notice.webhookBody(severity: severity, dashboard: dashboard)
            var headers = [("X-Segmenter-Delivery", source), ("X-Segmenter-Event", notice.state)]
            if let secret = webhook.secret { headers.append(("X-Segmenter-Signature", AlertNotice.signature(of: body, secret: secret))) }
            sends.append(("webhook", webhook.url, body, headers))
        }
        for send in sends {
            var wait = Duration.seconds(delivery.retryBackoffSeconds)
            for attempt in 1...delivery.maxAttempts {
                let outcome = http.post(send.url, body: send.body, headers: send.headers + [("X-Segmenter-Attempt", String(attempt))])
                let now = clock.wallNow.description
                guard let (reason, retryable) = outcome.failure else {
                    status.record(.delivered, target: send.name, at: now)
                    break
                }
                status.record(.failed, target: send.name, at: now, error: reason)
                logger.warning("alert \(notice.alert) (\(notice.state)) to \(send.name): try \(attempt) of \(delivery.maxAttempts) failed: \(reason)",
                               metadata: ["alert": "\(notice.alert)", "target": "\(send.name)"])
                if retryable, attempt < delivery.maxAttempts {
                    status.retrying = "\(source) \(notice.alert) \(notice.state) to \(send.name)"
                    saveStatus()
                    guard sleep(wait, unless: stop) else { return false }
                    wait = min(wait * 2, .seconds(delivery.maxBackoffSeconds))
                    continue
                }
                deadLetter(message, reason: "alert delivery to \(send.name) failed after \(attempt) tries: \(reason)", producer: producer)
                status.record(.deadLettered, target: send.name, at: now, error: reason)
                break
            }
        }
        status.retrying = nil  // saved with the change's next offset by the caller
        return true
    }

    private func resendFiring() {
        lastResend = clock.monotonicNow
        guard let base = delivery.alertmanager, !firing.isEmpty else { return }
        let alerts = firing.values.sorted { $0.notice.alert < $1.notice.alert }.map {
            $0.notice.alertmanagerAlert(severity: severities[$0.notice.alert] ?? "warning", dashboard: dashboard, startsAt: $0.startsAt,
                                        now: clock.wallNow)
        }
        if case let .retry(reason) = http.post(base.appendingPathComponent("api/v2/alerts"), body: Self.json(alerts), headers: []) {
            status.record(.failed, target: "alertmanager", at: clock.wallNow.description, error: "re-sending firing alerts: \(reason)")
            saveStatus()
        }
    }

    /// The dead-letter topic's format (SPEC §5), the change quoted whole.
    private func deadLetter(_ message: ConsumedMessage, reason: String, producer: KafkaProducer) {
        let value = DeadLetter.json(reason: reason, sourceTopic: message.topic, partition: message.partition, offset: message.offset,
                                    payload: message.payload, receivedAt: clock.wallNow)
        do {
            try producer.produceWaiting(topic: config.topics.deadLetters, key: message.key, value: Array(value.utf8))
            try producer.flush(timeoutMs: 10_000)
        } catch {
            logger.error("alert delivery: could not dead-letter \(message.topic)[\(message.partition)]@\(message.offset): \(error)",
                         metadata: ["topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)"])
        }
    }

    private func saveStatus() {
        do { try status.write(directory: config.stateDirectory) } catch {
            logger.warning("alert delivery: cannot write its status for inspect alerts: \(error)")
        }
    }

    /// Sleeps in short steps so a stop is noticed; false if stopped.
    private func sleep(_ duration: Duration, unless stop: StopSignal) -> Bool {
        let until = clock.monotonicNow + duration
        while clock.monotonicNow < until {
            if stop.isStopped { return false }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return !stop.isStopped
    }

    private static func json(_ value: Any) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("[]".utf8))
    }
}

/// The deliverer's thread as a swift-service-lifecycle service: stops with the group (a change
/// being retried then is delivered after the restart). A failure (Kafka refusing the consumer)
/// is logged and delivery retried after a pause: ingest goes on whatever delivery does.
package struct AlertDeliveryService: Service {
    let deliverer: AlertDeliverer
    let logger: Logger

    package init(deliverer: AlertDeliverer, logger: Logger) {
        self.deliverer = deliverer
        self.logger = logger.component("alert-delivery")
    }

    package func run() async throws {
        let stop = StopSignal()
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread { [deliverer, logger] in
                    while !stop.isStopped {
                        do {
                            try deliverer.run(until: stop)
                        } catch {
                            logger.error("alert delivery stopped: \(error); starting again in 10 s")
                            for _ in 0..<100 where !stop.isStopped { Thread.sleep(forTimeInterval: 0.1) }
                        }
                    }
                    continuation.resume()
                }
            }
        } onGracefulShutdown: {
            stop.stop()
        }
    }
}
