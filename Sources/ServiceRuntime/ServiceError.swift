/// A failure of the service itself, said in words an operator acts on.
public struct ServiceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
