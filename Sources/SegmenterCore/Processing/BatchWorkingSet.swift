/// The batch step's scratch state, laid out for the hot loop: each user and each input topic is
/// looked up by name once and then addressed by index, so an event costs one hash of its user
/// id (Swift hashes strings with SipHash: measured, hashing and copying user slices by name at
/// every step took more CPU than SQLite).
struct BatchWorkingSet {
    /// One user the batch touches.
    struct User {
        let userID: String
        /// As it will be once the batch commits.
        var slice: UserSlice
        /// The user had no row before the batch.
        let isNew: Bool
        /// New events of the batch (not duplicates), in arrival order, with the instants they take effect.
        var arrived: [TimedEvent] = []
        /// At least one event took effect: the profile row is written.
        var processed = false
        /// The profile row is written whole (a new user, or attributes, accounts or pre-signup
        /// activity changed); otherwise only its totals.
        var rewrite: Bool
        /// The waiting events changed (their row is written).
        var pendingChanged = false
        /// Publish the user's whole membership (see `BatchProcessor.Input.restateUntil`).
        var restate = false
        /// The batch's increments to the user's day sums, per day it touched (a handful).
        var touched: [(day: DayNumber, delta: DayAggregate)] = []
        /// The batch's increments to the user's metric days (SPEC §4b), one per day and metric.
        var metricWrites: [MetricDayWrite] = []

        mutating func add(_ delta: DayAggregate, on day: DayNumber) {
            if let index = touched.firstIndex(where: { $0.day == day }) { touched[index].delta += delta } else { touched.append((day, delta)) }
        }
    }

    private(set) var users: [User] = []
    private var indexByUser: [String: Int] = [:]

    /// The index of `userID`'s entry, created from the loaded state on first sight.
    /// The loaded state moves here (not copied), so its first change copies nothing.
    mutating func index(of userID: String, loaded: inout [String: UserSlice]) -> Int {
        if let index = indexByUser[userID] { return index }
        var slice = loaded.removeValue(forKey: userID) ?? UserSlice(profile: nil)
        let isNew = slice.profile == nil
        if isNew { slice.profile = UserProfile() }
        users.append(User(userID: userID, slice: slice, isNew: isNew, rewrite: isNew))
        indexByUser[userID] = users.count - 1
        return users.count - 1
    }

    /// Adds a user woken by their timer (not in the working set yet).
    mutating func add(_ userID: String, slice: UserSlice) {
        var slice = slice
        let isNew = slice.profile == nil
        if isNew { slice.profile = UserProfile() }
        users.append(User(userID: userID, slice: slice, isNew: isNew, rewrite: isNew))
        indexByUser[userID] = users.count - 1
    }

    subscript(index: Int) -> User {
        get { users[index] }
        _modify { yield &users[index] }
    }

    /// The index of `userID`'s entry, if the batch has one.
    func existingIndex(of userID: String) -> Int? { indexByUser[userID] }
}

/// Per input topic of the batch, what the hot loop reads and moves, by index (the topics of a
/// partition are two; comparing a record's topic with them is cheaper than hashing it).
struct BatchTopics {
    private(set) var names: [String] = []
    var stored: [Int64] = []
    var restateUntil: [Int64] = []

    init(_ input: BatchProcessor.Input) {
        for topic in Set(input.storedOffsets.keys).union(input.eventTimes.keys).union(input.restateUntil.keys).sorted() {
            append(topic, input)
        }
    }

    mutating func index(of topic: String, _ input: BatchProcessor.Input) -> Int {
        if let index = names.firstIndex(of: topic) { return index }
        append(topic, input)
        return names.count - 1
    }

    private mutating func append(_ topic: String, _ input: BatchProcessor.Input) {
        names.append(topic)
        stored.append(input.storedOffsets[topic] ?? 0)
        restateUntil.append(input.restateUntil[topic] ?? 0)
    }
}
