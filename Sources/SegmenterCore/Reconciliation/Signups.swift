/// Sign-up times compared a level at a time, like per-day sums: first per UTC day of
/// sign-up (count and sum of epoch seconds), then user by user inside the buckets that differ.
/// Seconds, because warehouses differ in sub-second precision.
public struct SignupBucket: Equatable, Sendable {
    public var users: Int64 = 0
    public var secondsSum: Int64 = 0
    public init(users: Int64 = 0, secondsSum: Int64 = 0) {
        self.users = users
        self.secondsSum = secondsSum
    }

    /// The bucket of a sign-up at `seconds` since the epoch: its UTC day.
    public static func bucket(ofEpochSeconds seconds: Int64) -> Int64 { seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400 }

    public static func buckets(_ signups: [String: Int64]) -> [Int64: SignupBucket] {
        var result: [Int64: SignupBucket] = [:]
        for seconds in signups.values {
            result[bucket(ofEpochSeconds: seconds), default: SignupBucket()].users += 1
            result[bucket(ofEpochSeconds: seconds), default: SignupBucket()].secondsSum += seconds
        }
        return result
    }
}

extension ReconciliationDiff {
    public static func differingSignupBuckets(local: [Int64: SignupBucket], warehouse: [Int64: SignupBucket]) -> [Int64] {
        Set(local.keys).union(warehouse.keys).filter { local[$0] != warehouse[$0] }.sorted()
    }

    /// Users whose warehouse sign-up second differs from the local one (or who have none locally).
    /// Users the warehouse does not know keep their local sign-up: an absent row is no evidence.
    public static func signupCorrections(local: [String: Int64], warehouse: [String: Int64]) -> [String: Int64] {
        warehouse.filter { local[$0.key] != $0.value }
    }
}
