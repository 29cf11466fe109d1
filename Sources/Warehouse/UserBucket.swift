import Crypto

/// The middle level of the diff: users of a day fall into 4096 buckets by the first three hex
/// digits of the MD5 of their id, a hash every warehouse can compute in SQL (`MD5` in
/// PostgreSQL and Redshift; a function we define on SQLite connections). Comparing bucket
/// totals first means a day with a few drifted users costs a few buckets' rows, not the day's.
public enum UserBucket {
    public static let hexDigits = 3

    public static func of(_ userID: String) -> String {
        var id = userID
        return id.withUTF8 { of(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// The bucket of an id given as its UTF-8 bytes (as SQLite hands a function its argument).
    public static func of(utf8 bytes: UnsafeRawBufferPointer) -> String {
        // The first three hex digits are the first byte and the high half of the second.
        var digest = Insecure.MD5.hash(data: bytes).makeIterator()
        let first = digest.next()!, second = digest.next()!
        return String(decoding: [hex[Int(first >> 4)], hex[Int(first & 0xF)], hex[Int(second >> 4)]], as: UTF8.self)
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// Lower-case hex MD5 of the UTF-8 bytes, as PostgreSQL's `md5(text)` returns it.
    public static func md5Hex(_ text: String) -> String {
        Insecure.MD5.hash(data: Array(text.utf8)).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

private extension String {
    func leftPadded(to length: Int) -> String { count >= length ? self : String(repeating: "0", count: length - count) + self }
}
