/// A `segment-kpi-deltas` message (SPEC §5): one pair's value moved. The topic's schema, both
/// ways, lives here: how the KPI leader writes it and how a new leader reads its chain back.
public struct KPIDelta: Equatable, Sendable {
    public let segment: String
    public let kpi: String
    public let previous: Double?
    public let current: Double?
    /// Members of the segment as of `asOf`.
    public let members: Int64
    public let asOf: Instant
    public let cause: ChangeCause
    /// 1, 2, 3… per pair: with `previous` = the prior message's `current`, the chain a consumer checks.
    public let seq: Int64

    public init(segment: String, kpi: String, previous: Double?, current: Double?, members: Int64, asOf: Instant, cause: ChangeCause, seq: Int64) {
        self.segment = segment
        self.kpi = kpi
        self.previous = previous
        self.current = current
        self.members = members
        self.asOf = asOf
        self.cause = cause
        self.seq = seq
    }

    /// Values are published rounded to 1e-6, so float noise from maintaining sums by
    /// difference never shows up as a change.
    public static func rounded(_ value: Double?) -> Double? { value.map { ($0 * 1e6).rounded() / 1e6 } }

    /// The next link of a pair's chain, or nil when `value` is what was last published.
    /// - Parameter last: the pair's last published value and seq (nil: never published).
    public static func next(after last: (value: Double?, seq: Int64)?, key: KPIKey, value: Double?, members: Int64,
                            asOf: Instant, cause: ChangeCause) -> KPIDelta? {
        guard value != (last?.value ?? nil) else { return nil }
        return KPIDelta(segment: key.segment, kpi: key.kpi, previous: last?.value ?? nil, current: value, members: members,
                        asOf: asOf, cause: cause, seq: (last?.seq ?? 0) + 1)
    }

    public var delta: Double? { if let current, let previous { Self.rounded(current - previous) } else { nil } }

    public var json: String {
        JSONText.object([
            ("segment", JSONText.quote(segment)), ("kpi", JSONText.quote(kpi)),
            ("previous", previous.map(JSONText.number) ?? "null"), ("current", current.map(JSONText.number) ?? "null"),
            ("delta", delta.map(JSONText.number) ?? "null"), ("members", String(members)),
            ("as_of", JSONText.quote(asOf.description)), ("cause", JSONText.quote(cause.rawValue)),
            ("seq", String(seq)),
        ])
    }

    /// The pair, `seq` and `current` of a message on the topic (nil for anything else).
    public static func chainPosition(of message: [UInt8]) -> (key: KPIKey, seq: Int64, current: Double?)? {
        guard let json = try? JSONParser.parse(message), case let .string(segment)? = json["segment"],
              case let .string(kpi)? = json["kpi"], case let .number(seqText)? = json["seq"], let seq = Int64(seqText) else { return nil }
        var value: Double?
        if case let .number(text)? = json["current"] { value = Double(text) }
        return (KPIKey(segment: segment, kpi: kpi), seq, value)
    }
}
