import SegmenterCore

/// Encodes a user's metric totals (`UserMetrics.totals`) for the `metrics` column of their
/// `users` row, and a distinct value for its `user_metric_values` row.
///
/// Per metric: its key, the lifetime total, first and latest counted instants, the distinct
/// values, the open sequence instances (`first`, completed) and the pending `then`s.
enum MetricCodec {
    static func encode(_ totals: [MetricKey: MetricTotals]) -> [UInt8]? {
        guard !totals.isEmpty else { return nil }
        var out = BinaryWriter()
        for (key, metric) in totals.sorted(by: { $0.key < $1.key }) {
            out.int64(key.rawValue)
            out.int64(metric.lifetime)
            out.instant(metric.firstAt)
            out.instant(metric.lastAt)
            out.count(metric.distinct.count)
            for value in metric.distinct.sorted() { out.distinct(value) }
            out.count(metric.open.count)
            for instance in metric.open {
                out.int64(instance.first.nanoseconds)
                out.byte(instance.completed ? 1 : 0)
            }
            out.count(metric.thens.count)
            for then in metric.thens { out.int64(then.nanoseconds) }
        }
        return out.bytes
    }

    static func decode(_ bytes: [UInt8]?) throws -> [MetricKey: MetricTotals] {
        guard let bytes, !bytes.isEmpty else { return [:] }
        var reader = BinaryReader(bytes, what: "a user's metrics")
        var result: [MetricKey: MetricTotals] = [:]
        while !reader.atEnd {
            let key = MetricKey(rawValue: try reader.int64())
            var metric = MetricTotals()
            metric.lifetime = try reader.int64()
            metric.firstAt = try reader.instant()
            metric.lastAt = try reader.instant()
            for _ in 0..<(try reader.count()) { metric.distinct.insert(try reader.distinct()) }
            for _ in 0..<(try reader.count()) {
                metric.open.append(SequenceInstance(first: Instant(nanoseconds: try reader.int64()), completed: try reader.byte() == 1))
            }
            for _ in 0..<(try reader.count()) { metric.thens.append(Instant(nanoseconds: try reader.int64())) }
            result[key] = metric
        }
        return result
    }

    /// One distinct value as its row's key: equal values encode alike.
    static func encode(_ value: DistinctValue) -> [UInt8] {
        var out = BinaryWriter()
        out.distinct(value)
        return out.bytes
    }

    static func decodeValue(_ bytes: [UInt8]) throws -> DistinctValue {
        var reader = BinaryReader(bytes, what: "a metric's distinct value")
        return try reader.distinct()
    }
}

extension BinaryWriter {
    /// A tag (0 number, 1 string, 2 false, 3 true, 4 date) and the value.
    mutating func distinct(_ value: DistinctValue) {
        switch value {
        case let .number(n): byte(0); double(n)
        case let .string(s): byte(1); string(s)
        case let .bool(b): byte(b ? 3 : 2)
        case let .date(d): byte(4); int64(Int64(d))
        }
    }
}

extension BinaryReader {
    mutating func distinct() throws -> DistinctValue {
        switch try byte() {
        case 0: return .number(try double())
        case 1: return .string(try string())
        case 2: return .bool(false)
        case 3: return .bool(true)
        case 4: return .date(DayNumber(truncatingIfNeeded: try int64()))
        default: throw malformed()
        }
    }
}
