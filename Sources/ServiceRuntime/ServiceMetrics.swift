import KafkaIO
import Metrics
import Prometheus
import SegmenterCore
import SegmenterStore

/// The service's metrics, through swift-metrics, exported in Prometheus text format.
///
/// `bootstrap()` once per process (the `run` command); without it the metrics are no-ops.
public enum ServiceMetrics {
    public static let registry = PrometheusCollectorRegistry()

    public static func bootstrap() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Finer than the default buckets where the latency target (p99 100 ms) has to be read off.
        let fine: [Duration] = [1, 2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100, 150, 250, 500, 1000, 2500, 5000, 10000].map { .milliseconds($0) }
        factory.durationHistogramBuckets["segmenter_poll_to_output_seconds"] = fine
        factory.durationHistogramBuckets["segmenter_commit_thread_seconds"] = fine
        MetricsSystem.bootstrap(factory)
    }

    /// The `/metrics` body.
    public static func exposition() -> String { registry.emitToString() }

    static let consumed = Counter(label: "segmenter_events_consumed_total")
    static let applied = Counter(label: "segmenter_events_applied_total")
    static let duplicates = Counter(label: "segmenter_events_deduplicated_total")
    static let deadLettered = Counter(label: "segmenter_events_dead_lettered_total")
    /// Valid events older than the dedupe horizon: dead-lettered (also in `deadLettered`), not applied.
    static let tooOld = Counter(label: "segmenter_events_too_old_total")
    static let keyMismatches = Counter(label: "segmenter_key_mismatch_total")
    /// New attribute names not stored: the user already held the most a user may (1,000).
    static let attributesDropped = Counter(label: "segmenter_attributes_dropped_total")
    static let batches = Counter(label: "segmenter_batches_total")
    static let batchSize = Recorder(label: "segmenter_batch_size")
    static let commitSeconds = Metrics.Timer(label: "segmenter_commit_duration_seconds")
    /// From a batch's poll (its earliest message) to its outputs handed to the Kafka producer:
    /// segmenter's own share of an event's latency, without the broker's round trips.
    package static let pollToOutput = Metrics.Timer(label: "segmenter_poll_to_output_seconds")
    package static let kpiDeltas = Counter(label: "segmenter_kpi_deltas_emitted_total")

    /// How long each kind of the commit thread's work took (`action`: commit, advance, emit_kpis,
    /// pump, drain, snapshots, assign, revoke, exclusive): a batch waits behind all of them, so
    /// this splits the tail of `segmenter_poll_to_output_seconds`.
    package static func recordCommitThread(_ action: String, _ duration: Duration) {
        commitThread[action]?.record(duration: duration)
    }

    /// One timer per kind, made once (the loop records several per batch).
    private static let commitThread = Dictionary(uniqueKeysWithValues: [
        "commit", "advance", "assign", "revoke", "exclusive", "emit_kpis", "pump", "drain", "snapshots", "stop",
    ].map { ($0, Metrics.Timer(label: "segmenter_commit_thread_seconds", dimensions: [("action", $0)])) })
    package static let deliveryFailures = Counter(label: "segmenter_outbox_delivery_failures_total")
    /// Seconds since the oldest unpublished outbox row was committed (0 when empty).
    package static let outboxAge = Gauge(label: "segmenter_outbox_oldest_age_seconds")
    static let timersFired = Counter(label: "segmenter_timers_fired_total")
    static let published = Gauge(label: "segmenter_outbox_published")
    /// 1 while this instance owns partition 0 and so publishes KPIs and alerts for the group.
    package static let kpiLeader = Gauge(label: "segmenter_kpi_leader")
    package static let snapshots = Counter(label: "segmenter_state_snapshots_total")
    package static let snapshotBytes = Counter(label: "segmenter_state_snapshot_bytes_total")
    package static let restores = Counter(label: "segmenter_state_restores_total")

    /// Records one committed batch.
    package static func record(_ outcome: BatchOutcome, consumed: Int, keyMismatches: Int, published: Int, commitNanoseconds: Int64) {
        Self.consumed.increment(by: consumed)
        applied.increment(by: outcome.applied)
        duplicates.increment(by: outcome.duplicates)
        deadLettered.increment(by: outcome.deadLettered)
        tooOld.increment(by: outcome.tooOld)
        attributesDropped.increment(by: outcome.attributesDropped)
        Self.keyMismatches.increment(by: keyMismatches)
        recordMembershipChanges(outcome.membershipChangesByCause)
        timersFired.increment(by: outcome.timersFired)
        batches.increment()
        batchSize.record(consumed)
        commitSeconds.recordNanoseconds(commitNanoseconds)
        Self.published.record(published)
    }
}

extension ServiceMetrics {
    /// `segmenter_membership_changes_total{cause}`.
    /// Input offsets no longer in Kafka when due to be consumed (SPEC §7), per partition.
    package static func recordSkippedOffsets(_ count: Int, of tp: TopicPartition) {
        Counter(label: "segmenter_input_offsets_skipped_total", dimensions: [("topic", tp.topic), ("partition", String(tp.partition))])
            .increment(by: count)
    }

    package static func recordMembershipChanges(_ byCause: [ChangeCause: Int]) {
        for (cause, count) in byCause where count > 0 {
            Counter(label: "segmenter_membership_changes_total", dimensions: [("cause", cause.rawValue)]).increment(by: count)
        }
    }

    /// Gauges read from the state once per KPI emit interval (see `CommitWorker`).
    package static func recordGauges(_ ingest: OperationalState.Ingest, alerts: [String: Bool], kpis: [KPIKey: Double?], wallNow: Instant) {
        Gauge(label: "segmenter_outbox_depth").record(ingest.outboxDepth)
        // How far event time lags the wall clock: a stalled input or a catch-up shows here.
        if let watermark = ingest.now {
            Gauge(label: "segmenter_watermark_age_seconds").record(Double(wallNow.nanoseconds - watermark.nanoseconds) / 1e9)
        }
        // The leader's published KPI values (an undefined value, e.g. an empty segment's average, is left out).
        for (key, value) in kpis {
            guard let value else { continue }
            Gauge(label: "segmenter_kpi_value", dimensions: [("segment", key.segment), ("kpi", key.kpi)]).record(value)
        }
        for (partition, lag) in ingest.lag {
            let parts = partition.split(separator: "/")
            Gauge(label: "segmenter_consumer_lag", dimensions: [("topic", String(parts.first ?? "")), ("partition", String(parts.last ?? ""))]).record(lag)
        }
        Gauge(label: "segmenter_timers").record(ingest.timers)
        Gauge(label: "segmenter_state_bytes").record(ingest.stateBytes)
        for (alert, firing) in alerts {
            Gauge(label: "segmenter_alert_firing", dimensions: [("alert", alert)]).record(firing ? 1 : 0)
        }
    }
}
