import SegmenterCore

extension PartitionStore {
    func write(_ profile: UserProfile, of userID: String) throws {
        upsertProfile.reset()
        upsertProfile.bind(1, userID)
        upsertProfile.bind(2, profile.signupAt?.nanoseconds)
        upsertProfile.bind(3, profile.lastActivityAt?.nanoseconds)
        upsertProfile.bind(4, profile.lifetimeSpendCents)
        upsertProfile.bind(5, profile.lifetimeActivities)
        upsertProfile.bind(6, profile.lifetimeActiveMicros)
        upsertProfile.bind(7, blob: ProfileCodec.encodeInstants(profile.activityBeforeSignup))
        upsertProfile.bind(8, ProfileCodec.encodeAttributes(profile.attributes))
        upsertProfile.bind(9, ProfileCodec.encodeAccounts(profile.accounts))
        try upsertProfile.run()
    }

    func writeTotals(_ profile: UserProfile, of userID: String) throws {
        updateProfileTotals.reset()
        updateProfileTotals.bind(1, profile.lastActivityAt?.nanoseconds)
        updateProfileTotals.bind(2, profile.lifetimeSpendCents)
        updateProfileTotals.bind(3, profile.lifetimeActivities)
        updateProfileTotals.bind(4, profile.lifetimeActiveMicros)
        updateProfileTotals.bind(5, userID)
        try updateProfileTotals.run()
    }

    func putMeta(_ key: String, _ value: Int64) throws {
        setMeta.reset()
        setMeta.bind(1, key)
        setMeta.bind(2, value)
        try setMeta.run()
    }

    /// Forgets event ids older than the dedupe horizon (in this partition's event time), at most once per day of event time
    /// (the delete scans the table, so doing it every batch would cost more than it saves).
    func pruneSeenEventsIfDue(now: Instant) throws {
        let lastPrune = try meta("seen_pruned_at") ?? 0
        guard now.nanoseconds - lastPrune >= 86_400 * Instant.nanosPerSecond else { return }
        let cutoff = now.nanoseconds - dedupeHorizonSeconds * Instant.nanosPerSecond
        let delete = try db.prepare("DELETE FROM seen_events WHERE ts < ?")
        delete.bind(1, cutoff)
        try delete.run()
        try putMeta("seen_pruned_at", now.nanoseconds)
    }
}
