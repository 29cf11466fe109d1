import Foundation
import SegmenterCore
import SegmenterStore
import ServiceConfig
import ServiceRuntime

/// The JSON API's bodies as Codable types: one place says what each route answers. Keys are
/// snake_case through CodingKeys; a missing value is `null`, not an absent key.
enum APIBody {
    struct Error: Encodable { let error: String }

    struct Readiness: Encodable {
        let ready: Bool
        let reason: String
    }

    struct Segment: Encodable {
        let segment: String
        @Null var rule: String?
        /// Every KPI of the segment, `members` included; null where it has no value (an empty segment's average).
        let kpis: [String: Double?]

        init(_ name: String, config: SegmenterConfig, partials: [KPIKey: KPIPartial]) {
            segment = name
            rule = config.catalog.segments.first { $0.name == name }?.ruleText
            kpis = Dictionary(uniqueKeysWithValues: config.catalog.kpiKeys.filter { $0.segment == name }.map { key in
                (key.kpi, config.catalog.value(of: key, in: partials))
            })
        }
    }

    /// `/api/users/{id}`: the user's features and segments, from the instance that answered.
    struct User: Encodable {
        let features: OrderedFields<FeatureValue>
        let segments: [String]
        /// The input partition the user's events are in, and the instance that owns it.
        let partition: Int32
        let instance: String
    }

    struct Ingest: Encodable {
        struct Pair: Encodable {
            @Null var watermark: String?
            @Null var eventWatermark: String?
            let caughtUp: Bool
            let lag: Int64

            enum CodingKeys: String, CodingKey { case watermark, eventWatermark = "event_watermark", caughtUp = "caught_up", lag }
        }

        @Null var now: String?
        let consumed: Int, applied: Int, duplicates: Int, deadLettered: Int
        let rate: Double
        /// Per "topic/partition".
        let lag: [String: Int64]
        let outboxDepth: Int, timers: Int
        let stateBytes: Int64
        let kpiLeader: Bool
        /// The partition pair holding the group's clock back.
        @Null var heldBackBy: Int32?
        let pairs: [String: Pair]
        /// Per "topic/partition" of this state directory: input offsets no longer in Kafka when
        /// they were due (SPEC §7), and the last range skipped.
        var skippedOffsets: [String: Int64] = [:]
        var lastSkipped: [String: String] = [:]

        enum CodingKeys: String, CodingKey {
            case now, consumed, applied, duplicates, deadLettered = "dead_lettered", rate, lag, outboxDepth = "outbox_depth", timers
            case stateBytes = "state_bytes", kpiLeader = "kpi_leader", heldBackBy = "held_back_by", pairs
            case skippedOffsets = "skipped_offsets", lastSkipped = "last_skipped"
        }

        init(_ i: OperationalState.Ingest, skipped: [SkippedOffsets] = []) {
            for row in skipped {
                skippedOffsets["\(row.topic)/\(row.partition)"] = row.total
                if let last = row.last { lastSkipped["\(row.topic)/\(row.partition)"] = last }
            }
            now = i.now?.description
            consumed = i.consumed; applied = i.applied; duplicates = i.duplicates; deadLettered = i.deadLettered
            rate = i.rate
            lag = i.lag
            outboxDepth = i.outboxDepth; timers = i.timers; stateBytes = i.stateBytes
            kpiLeader = i.kpiLeader
            heldBackBy = i.heldBackBy
            pairs = Dictionary(uniqueKeysWithValues: i.pairs.map { partition, pair in
                (String(partition), Pair(watermark: pair.clock?.description, eventWatermark: pair.events?.description, caughtUp: pair.caughtUp,
                                         lag: i.lag.filter { $0.key.hasSuffix("/\(partition)") }.values.reduce(0, +)))
            })
        }
    }

    struct Alert: Encodable {
        struct DrillDownGroup: Codable {
            let dimension: String
            let group: String
            let members: Int64
            let value: Double?
            let contribution: Double
        }

        let alert: String, segment: String, kpi: String, state: String
        @Null var value: Double?
        @Null var baseline: Double?
        /// The latest firing's sub-groups, largest contribution first (while it fires).
        @Null var drillDown: [DrillDownGroup]?

        enum CodingKeys: String, CodingKey { case alert, segment, kpi, state, value, baseline, drillDown = "drill_down" }

        init(_ alert: AlertDefinition, state: AlertStateReader.Row?) {
            self.alert = alert.name
            segment = alert.segment
            kpi = alert.kpi
            self.state = state?.state ?? "resolved"
            value = state?.value
            baseline = state?.baseline
            drillDown = state?.drillDown.flatMap { try? JSONDecoder().decode([DrillDownGroup].self, from: Data($0.utf8)) }
        }
    }

    /// `{segment: {kpi: [[time, value], …]}}`, oldest first: the sparklines' recent samples.
    static func sparklines(_ samples: [OperationalState.Sample]) -> [String: [String: [Sample]]] {
        var series: [String: [String: [Sample]]] = [:]
        for sample in samples {
            for (key, value) in sample.values {
                series[key.segment, default: [:]][key.kpi, default: []].append(Sample(at: sample.at.description, value: value))
            }
        }
        return series
    }

    /// One sparkline point, as `[time, value]`.
    struct Sample: Encodable {
        let at: String
        let value: Double?

        func encode(to encoder: any Encoder) throws {
            var pair = encoder.unkeyedContainer()
            try pair.encode(at)
            if let value { try pair.encode(value) } else { try pair.encodeNil() }
        }
    }
}

/// Encodes nil as `null` (a synthesized `Encodable` leaves an optional property out).
@propertyWrapper
struct Null<Value: Encodable>: Encodable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}
