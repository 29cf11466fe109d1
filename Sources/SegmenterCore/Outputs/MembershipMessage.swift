/// One published membership change (SPEC §5), as the user's history keeps it for `explain`.
public struct MembershipChange: Hashable, Sendable, CustomStringConvertible {
    public let userID: String
    public let segment: String
    public let entered: Bool
    public let asOf: Instant
    public let cause: ChangeCause

    public init(userID: String, segment: String, entered: Bool, asOf: Instant, cause: ChangeCause) {
        self.userID = userID
        self.segment = segment
        self.entered = entered
        self.asOf = asOf
        self.cause = cause
    }

    public var description: String { "\(userID)/\(segment) \(entered ? "enter" : "exit") at \(asOf) by \(cause.rawValue)" }
}

/// The `segment-membership` message (SPEC §5), and the row of the `topics.members` table.
extension MembershipChange {
    /// `{"user_id":…,"segment":…,"change":"enter"|"exit","as_of":…,"cause":…}`, built as bytes:
    /// this runs for every change. `asOfText` is `asOf` in RFC 3339 (a batch formats each instant once).
    public func message(asOfText: String) -> [UInt8] {
        var value: [UInt8] = []
        value.reserveCapacity(120 + userID.utf8.count + segment.utf8.count)
        value.append(contentsOf: #"{"user_id":"#.utf8)
        JSONText.appendQuoted(userID, to: &value)
        value.append(contentsOf: #","segment":"#.utf8)
        JSONText.appendQuoted(segment, to: &value)
        value.append(contentsOf: (entered ? #","change":"enter","as_of":""# : #","change":"exit","as_of":""#).utf8)
        value.append(contentsOf: asOfText.utf8)
        value.append(contentsOf: #"","cause":""#.utf8)
        value.append(contentsOf: cause.rawValue.utf8)
        value.append(contentsOf: #""}"#.utf8)
        return value
    }

    /// The key of the user's row in the compacted members table: `SEGMENT|USER`.
    public var membersTableKey: [UInt8] { Array((segment + "|" + userID).utf8) }
}
