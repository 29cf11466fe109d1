/// A dev tool's failure, said in words (the CLI prints it as is).
public struct DevToolError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
