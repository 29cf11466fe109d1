/// A metric's identity in stored state: a 64-bit hash of its name and parsed definition, so a
/// metric whose definition changes starts empty instead of mixing two meanings (SPEC §4b).
public struct MetricKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// FNV-1a over the UTF-8 of `name` and `definition`: stable across processes and releases.
    public init(name: String, definition: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 + [0] + definition.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        rawValue = Int64(bitPattern: hash)
    }

    public static func < (a: MetricKey, b: MetricKey) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(UInt64(bitPattern: rawValue), radix: 16) }
}

/// What a metric's value is made of, as rules and state need it (not its filters).
public enum MetricShape: Hashable, Sendable {
    case count
    /// Sums are kept in millionths (each event's value rounded half-even to 6 decimals), so a
    /// sum is exact and the same in any order.
    case sum
    case countDistinct
    /// Counts an instance once a `then` event follows `first` within `within` (nanoseconds), or
    /// with `abandoned`, once `within` passes without one.
    case sequence(withinNanos: Int64, abandoned: Bool)
}

/// A metric as a rule reads it: its name, its state's key and its shape.
public struct MetricRef: Hashable, Sendable {
    public let name: String
    public let key: MetricKey
    public let shape: MetricShape
}

/// The days a metric is read over.
public enum MetricWindow: Hashable, Sendable {
    case days(Int)
    case lifetime
}

/// One `metrics:` entry (SPEC §4b), parsed and type-checked.
public struct MetricDefinition: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case count(filter: RuleExpression)
        case sum(value: RuleExpression, filter: RuleExpression?)
        case countDistinct(value: RuleExpression, filter: RuleExpression?)
        case sequence(first: RuleExpression, then: RuleExpression, withinNanos: Int64, abandoned: Bool)
    }

    public let name: String
    public let kind: Kind
    /// The filters compiled for the hot path (see `EventFilter`): the count's, the `where:`,
    /// or the sequence's `first` and `then`.
    let filters: [EventFilter]
    /// The definition as it parsed (`count: (type = 'login')`): what `validate` prints and the
    /// key is made from, so reformatting the YAML changes nothing.
    public let canonical: String

    public var ref: MetricRef { MetricRef(name: name, key: key, shape: shape) }
    /// Its state's key: a hash of the name and the definition as parsed.
    public let key: MetricKey

    public var shape: MetricShape {
        switch kind {
        case .count: .count
        case .sum: .sum
        case .countDistinct: .countDistinct
        case let .sequence(_, _, within, abandoned): .sequence(withinNanos: within, abandoned: abandoned)
        }
    }

    /// The texts of one entry, each parsed where it stands (errors carry its span).
    public enum Source: Sendable {
        case count(filter: String)
        case sum(value: String, filter: String?)
        case countDistinct(value: String, filter: String?)
        case sequence(first: String, then: String, withinNanos: Int64, abandoned: Bool)
    }

    /// Which text of the entry a `RuleError` is about, so the config names its line.
    public enum Part: String, Sendable { case count, sum, countDistinct = "count_distinct", whereFilter = "where", first, then, thenNot = "then_not" }

    public struct PartError: Error, Sendable {
        public let part: Part
        public let error: RuleError
    }

    /// Longest `within` (a year): instances stay open this long past the dedupe horizon.
    public static let maximumWithinNanos: Int64 = 366 * 86_400 * Instant.nanosPerSecond

    public static let namePattern = "^[a-z][a-z0-9_]{0,63}$"

    /// `24h`, `90m`, `2d`, `45s`: the largest unit that divides it.
    static func duration(_ nanos: Int64) -> String {
        for (unit, size) in [("d", Int64(86_400)), ("h", 3600), ("m", 60), ("s", 1)] where nanos % (size * Instant.nanosPerSecond) == 0 {
            return "\(nanos / (size * Instant.nanosPerSecond))\(unit)"
        }
        return "\(nanos)ns"
    }

    public init(name: String, source: Source) throws(PartError) {
        self.name = name
        func filter(_ text: String, _ part: Part) throws(PartError) -> RuleExpression {
            do { return try RuleParser.parseFilter(text) } catch { throw PartError(part: part, error: error) }
        }
        func value(_ text: String, _ part: Part, number: Bool) throws(PartError) -> RuleExpression {
            do { return try RuleParser.parseEventValue(text, number: number) } catch { throw PartError(part: part, error: error) }
        }
        switch source {
        case let .count(text):
            let f = try filter(text, .count)
            kind = .count(filter: f)
            canonical = "count: \(f.canonicalText)"
        case let .sum(text, whereText):
            let v = try value(text, .sum, number: true)
            let f = try whereText.map { (t) throws(PartError) in try filter(t, .whereFilter) }
            kind = .sum(value: v, filter: f)
            canonical = "sum: \(v.canonicalText)" + (f.map { " where: \($0.canonicalText)" } ?? "")
        case let .countDistinct(text, whereText):
            let v = try value(text, .countDistinct, number: false)
            let f = try whereText.map { (t) throws(PartError) in try filter(t, .whereFilter) }
            kind = .countDistinct(value: v, filter: f)
            canonical = "count_distinct: \(v.canonicalText)" + (f.map { " where: \($0.canonicalText)" } ?? "")
        case let .sequence(firstText, thenText, within, abandoned):
            let first = try filter(firstText, .first)
            let then = try filter(thenText, abandoned ? .thenNot : .then)
            kind = .sequence(first: first, then: then, withinNanos: within, abandoned: abandoned)
            canonical = "sequence: first: \(first.canonicalText) \(abandoned ? "then_not" : "then"): \(then.canonicalText) within: \(Self.duration(within))"
        }
        key = MetricKey(name: name, definition: canonical)
        filters = switch kind {
        case let .count(filter): [EventFilter(filter)]
        case let .sum(_, filter), let .countDistinct(_, filter): filter.map { [EventFilter($0)] } ?? []
        case let .sequence(first, then, _, _): [EventFilter(first), EventFilter(then)]
        }
    }

    public static func == (a: MetricDefinition, b: MetricDefinition) -> Bool { a.key == b.key && a.kind == b.kind }
}

/// The configured metrics, in configuration order.
public struct MetricCatalog: Sendable, Equatable {
    public let metrics: [MetricDefinition]
    public let refs: [String: MetricRef]
    /// Each metric's key, in configuration order.
    public let keys: [MetricKey]

    public init(_ metrics: [MetricDefinition] = []) {
        self.metrics = metrics
        keys = metrics.map(\.key)
        refs = Dictionary(uniqueKeysWithValues: metrics.map { ($0.name, $0.ref) })
    }

    public var isEmpty: Bool { metrics.isEmpty }

    /// Names a metric may not take: the built-in features and the language's words.
    public static let reservedNames: Set<String> = RuleParser.builtinNames.union([
        "attr", "prop", "type", "topic", "amount", "duration_s", "hours_since_last", "hours_since_first",
        "true", "false", "null", "date", "and", "or", "not", "in", "between", "is", "lifetime", "members",
    ])
}
