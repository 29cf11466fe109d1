import SegmenterCore
import Yams

extension SegmenterConfig {
    /// `metrics:` entries (SPEC §4b): each a name and exactly one of `count:`, `sum:`,
    /// `count_distinct:` or `sequence:`; every filter parsed where it stands, so an error names
    /// its file, line and column with a caret under the problem.
    static func parseMetrics(_ node: Node, reader: YAMLReader) throws -> MetricCatalog {
        var metrics: [MetricDefinition] = []
        for item in try reader.sequence(node) {
            let entry = try reader.mapping(item, allowed: ["name", "count", "sum", "count_distinct", "where", "sequence", "description"])
            guard let nameNode = entry["name"] else { throw reader.error(item, "a metric needs a name") }
            let name = try reader.string(nameNode)
            guard name.range(of: MetricDefinition.namePattern, options: .regularExpression) != nil else {
                throw reader.error(nameNode, "metric name must match [a-z][a-z0-9_]{0,63} (lower case), not \"\(name)\"")
            }
            guard !MetricCatalog.reservedNames.contains(name) else {
                throw reader.error(nameNode, "metric name \(name) is taken by a built-in feature or word of the rule language")
            }
            guard !metrics.contains(where: { $0.name == name }) else { throw reader.error(nameNode, "duplicate metric \(name)") }
            let kinds = ["count", "sum", "count_distinct", "sequence"].filter { entry[$0] != nil }
            guard kinds.count == 1, let kindNode = entry[kinds[0]] else {
                throw reader.error(item, "metric \(name) needs exactly one of count:, sum:, count_distinct:, sequence:")
            }
            var nodes: [MetricDefinition.Part: Node] = [:]
            let source: MetricDefinition.Source
            switch kinds[0] {
            case "count":
                if let whereNode = entry["where"] {
                    throw reader.error(whereNode, "a count takes its filter as its value (count: FILTER), without where:")
                }
                nodes[.count] = kindNode
                source = .count(filter: try reader.string(kindNode))
            case "sum", "count_distinct":
                let part: MetricDefinition.Part = kinds[0] == "sum" ? .sum : .countDistinct
                nodes[part] = kindNode
                nodes[.whereFilter] = entry["where"]
                let value = try reader.string(kindNode)
                let filter = try entry["where"].map(reader.string)
                source = part == .sum ? .sum(value: value, filter: filter) : .countDistinct(value: value, filter: filter)
            default:
                if let whereNode = entry["where"] {
                    throw reader.error(whereNode, "a sequence's events are chosen by first: and then: (or then_not:), not where:")
                }
                let sequence = try reader.mapping(kindNode, allowed: ["first", "then", "then_not", "within"])
                guard let firstNode = sequence["first"], let withinNode = sequence["within"] else {
                    throw reader.error(kindNode, "sequence \(name) needs first:, within: and one of then: or then_not:")
                }
                let thens = ["then", "then_not"].filter { sequence[$0] != nil }
                guard thens.count == 1, let thenNode = sequence[thens[0]] else {
                    throw reader.error(kindNode, "sequence \(name) needs exactly one of then: (a completed sequence) or then_not: (an abandoned one)")
                }
                let abandoned = thens[0] == "then_not"
                let seconds = try reader.duration(withinNode)
                guard seconds > 0, seconds <= MetricDefinition.maximumWithinNanos / Instant.nanosPerSecond else {
                    throw reader.error(withinNode, "within must be more than 0 and at most 366d, not \"\(try reader.string(withinNode))\"")
                }
                nodes[.first] = firstNode
                nodes[abandoned ? .thenNot : .then] = thenNode
                source = .sequence(first: try reader.string(firstNode), then: try reader.string(thenNode),
                                   withinNanos: seconds * Instant.nanosPerSecond, abandoned: abandoned)
            }
            do {
                metrics.append(try MetricDefinition(name: name, source: source))
            } catch {
                let node = nodes[error.part] ?? item
                throw reader.ruleError(error.error, in: node, text: try reader.string(node), what: "metric \(name) \(error.part.rawValue)")
            }
        }
        return MetricCatalog(metrics)
    }
}
