/// A configuration problem, located: `config/segmenter.yaml:12:5: unknown key "topcs"`.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let line: Int?
    public let column: Int?
    public let problem: String

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let line, let column, line > 0 { location += ":\(column)" }
        return "\(location): \(problem)"
    }
}
