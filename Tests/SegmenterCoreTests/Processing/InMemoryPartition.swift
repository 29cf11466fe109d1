@testable import SegmenterCore

/// The store's part of a commit without SQLite (a stand-in by design, named so): it hands the
/// processor the slices a batch needs from dictionaries and applies the effects back. So the
/// processor is tested on its own; the SQLite store is tested in SegmenterStoreTests.
struct InMemoryPartition: PartitionStateReading {
    let processor: BatchProcessor
    var profiles: [String: UserProfile] = [:]
    var days: [String: [DayNumber: DayAggregate]] = [:]
    var evidence: [UserDay: EventEvidence] = [:]
    var memberships: [String: [String: [Double?]]] = [:]
    var timers: [String: Instant] = [:]
    var pending: [String: [UserEvent]] = [:]
    var partials = KPIPartials()
    var offsets: [String: Int64] = [:]
    var watermark = PairWatermark()
    var eventTimes: [String: Instant] = [:]
    var outbox: [BatchEffects.Message] = []

    init(_ processor: BatchProcessor) { self.processor = processor }

    /// The input the store would build for `records`: the same `BatchProcessor.load` the store uses.
    func input(_ records: [DecodedRecord], inputEnds: BatchProcessor.InputEnds = .allRead, wallClock: Instant? = nil) -> BatchProcessor.Input {
        var input = BatchProcessor.Input(records: records, receivedAt: Instant(seconds: 1_800_000_000))
        input.storedOffsets = offsets
        input.watermark = watermark
        input.eventTimes = eventTimes
        input.inputEnds = inputEnds
        input.wallClock = wallClock
        var state = self
        try! processor.load(&input, from: &state)
        return input
    }

    func slice(of user: String) -> UserSlice {
        let ids = Dictionary(uniqueKeysWithValues: evidence.filter { $0.key.userID == user }.map { ($0.key.day, $0.value) })
        return UserSlice(profile: profiles[user], days: days[user] ?? [:], evidence: RecentEvidence(days: ids),
                         memberships: memberships[user] ?? [:], due: timers[user], dueKnown: true, pending: pending[user] ?? [])
    }

    @discardableResult
    /// - Parameter wallClock: the hybrid clock's reading (moves a pair read to its end).
    mutating func commit(_ records: [DecodedRecord], inputEnds: BatchProcessor.InputEnds = .allRead, wallClock: Instant? = nil) -> BatchEffects {
        var batch = input(records, inputEnds: inputEnds, wallClock: wallClock)
        let effects = processor.process(&batch, partials: partials)
        apply(effects)
        return effects
    }

    mutating func apply(_ effects: BatchEffects) {
        for (user, write) in effects.profiles { profiles[user] = write.profile }
        for write in effects.days {
            days[write.userID, default: [:]][write.day, default: DayAggregate()] += write.delta
            if let ids = write.evidence { evidence[UserDay(write.userID, write.day)] = ids }
        }
        for write in effects.memberships { memberships[write.userID, default: [:]][write.segment] = write.contributions }
        for (user, due) in effects.timers { timers[user] = due }
        for (user, events) in effects.pending { pending[user] = events.isEmpty ? nil : events }
        outbox += effects.messages
        partials = effects.partials
        _ = partials.takeBucketDeltasForgettingChanges()  // as the store does once a batch is committed
        for (topic, next) in effects.outcome.nextOffsets { offsets[topic] = max(offsets[topic] ?? 0, next) }
        if let moved = effects.watermark { watermark = moved }
        eventTimes.merge(effects.eventTimes) { $1 }
    }

    // Every day and every id is at hand: `firstDay` and `evidence` change nothing here.
    func slice(of userID: String, firstDay: DayNumber, evidence: Bool) -> UserSlice { slice(of: userID) }

    func usersToWake(at clock: Instant) -> [(userID: String, due: Instant?, evidence: Bool)] {
        let timed = timers.filter { $0.value <= clock }.sorted { $0.key < $1.key }.map { ($0.key, Optional($0.value), true) }
        let waiting = pending.filter { user, events in (timers[user].map { $0 > clock } ?? true) && events.contains { $0.ts <= clock } }
        return timed + waiting.keys.sorted().map { ($0, nil, true) }
    }

    /// Users in each segment (`all` included), as the rows say.
    var members: [String: Set<String>] {
        memberships.compactMapValues { rows in rows.isEmpty ? nil : Set(rows.keys) }
    }
}

/// Records for hand-written batches: one event per record, offsets in order.
struct Records {
    var offsets: [String: Int64] = [:]

    mutating func next(_ event: UserEvent) -> DecodedRecord {
        let topic = if case .billing = event.body { "billing" } else { "activity" }
        defer { offsets[topic, default: 0] += 1 }
        return DecodedRecord(topic: topic, partition: 0, offset: offsets[topic] ?? 0, key: Array(event.userID.utf8),
                             payload: Array("{\"event_id\":\"\(event.eventID)\"}".utf8), decoded: .success(event))
    }

    mutating func invalid(_ payload: String, reason: String) -> DecodedRecord {
        defer { offsets["activity", default: 0] += 1 }
        return DecodedRecord(topic: "activity", partition: 0, offset: offsets["activity"] ?? 0, key: nil,
                             payload: Array(payload.utf8), decoded: .failure(DecodeFailure(reason)))
    }
}

extension UserEvent {
    static func signup(_ id: String, _ user: String, at ts: Instant) -> UserEvent {
        UserEvent(eventID: id, userID: user, ts: ts, body: .signup(attributes: [:]))
    }
    static func session(_ id: String, _ user: String, at ts: Instant, seconds: Int64 = 60) -> UserEvent {
        UserEvent(eventID: id, userID: user, ts: ts, body: .activity(type: "session", durationMicros: seconds * 1_000_000))
    }
    static func charge(_ id: String, _ user: String, at ts: Instant, cents: Int64) -> UserEvent {
        UserEvent(eventID: id, userID: user, ts: ts, body: .billing(cents: cents))
    }
}
