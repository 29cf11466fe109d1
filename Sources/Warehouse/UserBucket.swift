import Crypto

/// The middle level of the diff: users of a day fall into 4096 buckets by the first three hex
/// digits of the MD5 of their id, a hash every warehouse can compute in SQL (`MD5` in
/// PostgreSQL and Redshift; a function we define on SQLite connections). Comparing bucket
/// totals first means a day with a few drifted users costs a few buckets' rows, not the day's.
public enum UserBucket {
    public static let hexDigits = 3

    public static func of(_ userID: String) -> String { String(md5Hex(userID).prefix(hexDigits)) }

    /// Lower-case hex MD5 of the UTF-8 bytes, as PostgreSQL's `md5(text)` returns it.
    public static func md5Hex(_ text: String) -> String {
        Insecure.MD5.hash(data: Array(text.utf8)).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

private extension String {
    func leftPadded(to length: Int) -> String { count >= length ? self : String(repeating: "0", count: length - count) + self }
}
