import Foundation
import SegmenterCore
import Yams

/// Walks a YAML document node by node so every error can name its line and column.
struct YAMLReader {
    let file: String
    let root: Node?
    let environment: [String: String]

    init(yaml: String, file: String, environment: [String: String]) throws {
        self.file = file
        self.environment = environment
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(file: file, line: Self.line(of: error), column: nil, problem: "not valid YAML: \(error)")
        }
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case let .scanner(_, _, mark, _), let .parser(_, _, mark, _): return mark.line
        default: return nil
        }
    }

    func error(_ node: Node, _ problem: String) -> ConfigError {
        ConfigError(file: file, line: node.mark?.line, column: node.mark?.column, problem: problem)
    }

    /// A mapping's entries; with `allowed`, any other key is an error naming the allowed ones.
    func mapping(_ node: Node, allowed: Set<String>?) throws -> [String: Node] {
        guard let mapping = node.mapping else { throw error(node, "expected a mapping of key: value") }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { throw error(keyNode, "keys must be strings") }
            if let allowed, !allowed.contains(key) {
                throw error(keyNode, "unknown key \"\(key)\" (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
            guard result[key] == nil else { throw error(keyNode, "duplicate key \"\(key)\"") }
            result[key] = value
        }
        return result
    }

    func sequence(_ node: Node) throws -> [Node] {
        guard let sequence = node.sequence else { throw error(node, "expected a list (- item)") }
        return Array(sequence)
    }

    /// A rule or KPI expression, parsed and type-checked; errors point into the rule with a caret.
    func rule<T>(_ node: Node, what: String, _ parse: (String) throws(RuleError) -> T) throws -> T {
        let text = try string(node)
        do {
            return try parse(text)
        } catch {
            throw ruleError(error, in: node, text: text, what: what)
        }
    }

    /// `error`, found in the rule `text` read from `node`, at its line and column with a caret.
    func ruleError(_ error: RuleError, in node: Node, text: String, what: String) -> ConfigError {
        let quoted = node.scalar.map { $0.style == .singleQuoted || $0.style == .doubleQuoted } ?? false
        let column = (node.mark?.column ?? 1) + (quoted ? 1 : 0) + error.span.start
        let caret = error.caret(in: text).split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
        return ConfigError(file: file, line: node.mark?.line, column: column, problem: "\(what): \(error.message)\n\(caret)")
    }

    /// A scalar with each `${VAR}` replaced from the environment, once, left to right: what a
    /// variable holds is literal (a secret containing `${` stays as it is, a self-reference
    /// cannot loop).
    func string(_ node: Node) throws -> String {
        guard let scalar = node.scalar else { throw error(node, "expected a single value") }
        let text = scalar.string
        var result = ""
        var rest = text[...]
        while let start = rest.range(of: "${") {
            guard let end = rest.range(of: "}", range: start.upperBound..<rest.endIndex) else {
                throw error(node, "unterminated ${ in value")
            }
            let name = String(rest[start.upperBound..<end.lowerBound])
            guard let value = environment[name] else {
                throw error(node, "environment variable \(name) is not set")
            }
            result += rest[..<start.lowerBound]
            result += value
            rest = rest[end.upperBound...]
        }
        return result + rest
    }

    func integer(_ node: Node, in range: ClosedRange<Int>) throws -> Int {
        let text = try string(node)
        guard let value = Int(text), range.contains(value) else {
            throw error(node, "expected a whole number in \(range.lowerBound)...\(range.upperBound), not \"\(text)\"")
        }
        return value
    }

    /// `true` or `false` (YAML's other spellings of them too).
    func boolean(_ node: Node) throws -> Bool {
        switch try string(node).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(node, "expected true or false")
        }
    }

    /// `30s`, `15m`, `24h`, `7d` in seconds, at most `maximumDurationSeconds`.
    func duration(_ node: Node) throws -> Int64 {
        let text = try string(node)
        guard let seconds = Self.seconds(text) else {
            throw error(node, "expected a duration like 30s, 15m, 24h or 7d (at most 36500d), not \"\(text)\"")
        }
        return seconds
    }

    /// A hundred years: any duration in nanoseconds stays far inside Int64 (a configured
    /// `9223372036854775807d` trapped on overflow).
    static let maximumDurationSeconds: Int64 = 36_500 * 86_400

    static func seconds(_ text: String) -> Int64? {
        guard let unit = text.last, let count = Int64(text.dropLast()), count >= 0 else { return nil }
        let scale: Int64
        switch unit {
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        case "d": scale = 86_400
        default: return nil
        }
        let (seconds, overflow) = count.multipliedReportingOverflow(by: scale)
        return overflow || seconds > maximumDurationSeconds ? nil : seconds
    }
}
