import Foundation
import SegmenterCore
import Yams

extension SegmenterConfig {
    /// `alerts:` is either the list of rules, or a mapping of `rules:` and `deliver:` (where
    /// state changes go besides the alerts topic).
    static func parseAlertsSection(_ node: Node, catalog: SegmentCatalog, reader: YAMLReader) throws -> ([AlertDefinition], AlertDeliveryConfig?) {
        guard node.mapping != nil else { return (try parseAlerts(node, catalog: catalog, reader: reader), nil) }
        let section = try reader.mapping(node, allowed: ["rules", "deliver"])
        let rules = try section["rules"].map { try parseAlerts($0, catalog: catalog, reader: reader) } ?? []
        let delivery = try section["deliver"].map { try AlertDeliveryConfig.parse($0, reader: reader) }
        if delivery != nil, rules.isEmpty { throw reader.error(node, "alerts.deliver is set but alerts.rules lists no alert") }
        return (rules, delivery)
    }

    /// A label value Alertmanager routes on: `critical`, `warning`, `info`, or another word.
    static func severity(_ node: Node, reader: YAMLReader) throws -> String {
        let text = try reader.string(node)
        guard !text.isEmpty, text.count <= 64, text.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw reader.error(node, "severity must be one word like critical, warning or info, not \"\(text)\"")
        }
        return text
    }

    /// `alerts:` entries; an unknown segment or KPI is an error naming both.
    static func parseAlerts(_ node: Node, catalog: SegmentCatalog, reader: YAMLReader) throws -> [AlertDefinition] {
        var alerts: [AlertDefinition] = []
        for item in try reader.sequence(node) {
            let entry = try reader.mapping(item, allowed: ["name", "segment", "kpi", "threshold", "drop", "rise", "for",
                                                           "min_members", "resolve_at", "baseline_days", "same_weekday", "description", "severity"])
            guard let nameNode = entry["name"], let segmentNode = entry["segment"], let kpiNode = entry["kpi"] else {
                throw reader.error(item, "an alert needs name, segment and kpi")
            }
            let name = try reader.string(nameNode)
            guard !alerts.contains(where: { $0.name == name }) else { throw reader.error(nameNode, "duplicate alert \(name)") }
            let segment = try reader.string(segmentNode)
            guard catalog.segmentNames.contains(segment) else {
                throw reader.error(segmentNode, "alert \(name): unknown segment \(segment) (known: \(catalog.segmentNames.joined(separator: ", ")))")
            }
            let kpi = try reader.string(kpiNode)
            let kpis = catalog.builtInKPIs + catalog.kpis(for: segment).map(\.name)
            guard kpis.contains(kpi) else {
                throw reader.error(kpiNode, "alert \(name): segment \(segment) has no KPI \(kpi) (it has: \(kpis.joined(separator: ", ")))")
            }
            let kinds = ["threshold", "drop", "rise"].filter { entry[$0] != nil }
            guard kinds.count == 1, let kindNode = entry[kinds[0]] else {
                throw reader.error(item, "alert \(name) needs exactly one of threshold:, drop:, rise:")
            }
            let text = try reader.string(kindNode).trimmingCharacters(in: .whitespaces)
            let condition: AlertDefinition.Condition
            if kinds[0] == "threshold" {
                let ops: [(String, BinaryOperator)] = [("<=", .lessOrEqual), (">=", .greaterOrEqual), ("!=", .notEqual),
                                                       ("<", .less), (">", .greater), ("=", .equal)]
                guard let (symbol, op) = ops.first(where: { text.hasPrefix($0.0) }),
                      let limit = Double(text.dropFirst(symbol.count).trimmingCharacters(in: .whitespaces)) else {
                    throw reader.error(kindNode, "threshold must look like \"< 1.5\" or \"> 0.9\", not \"\(text)\"")
                }
                condition = .threshold(op, limit)
            } else {
                guard let percent = Double(text.hasSuffix("%") ? String(text.dropLast()) : text), percent > 0, percent < 1000 else {
                    throw reader.error(kindNode, "\(kinds[0]) must be a percentage like 30%, not \"\(text)\"")
                }
                condition = kinds[0] == "drop" ? .drop(percent: percent) : .rise(percent: percent)
            }
            var resolveAt: Double?
            if let node = entry["resolve_at"] {
                let value = try reader.string(node)
                guard let number = Double(value.hasSuffix("%") ? String(value.dropLast()) : value) else {
                    throw reader.error(node, "resolve_at must be a number (a percentage for drop/rise)")
                }
                resolveAt = number
            }
            alerts.append(AlertDefinition(
                name: name, segment: segment, kpi: kpi, condition: condition,
                baseline: AlertDefinition.Baseline(count: try entry["baseline_days"].map { try reader.integer($0, in: 1...365) } ?? 7,
                                                   sameWeekday: try entry["same_weekday"].map { try reader.string($0) == "true" } ?? false),
                forSeconds: try entry["for"].map(reader.duration) ?? 0,
                minMembers: Int64(try entry["min_members"].map { try reader.integer($0, in: 0...1_000_000_000) } ?? 0),
                resolveAt: resolveAt,
                severity: try entry["severity"].map { try Self.severity($0, reader: reader) } ?? "warning"))
        }
        return alerts
    }
}

