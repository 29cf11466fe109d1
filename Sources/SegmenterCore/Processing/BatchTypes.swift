/// One input message with the decoder's verdict, ready to be processed.
public struct DecodedRecord: Sendable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let key: [UInt8]?
    /// The message as received; ingest keeps it only when a dead letter may quote it (decoding
    /// failed, or the event is older than the dedupe horizon), so it may be empty for a valid event.
    public let payload: [UInt8]
    public let decoded: Result<UserEvent, DecodeFailure>

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, payload: [UInt8],
                decoded: Result<UserEvent, DecodeFailure>) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.payload = payload
        self.decoded = decoded
    }
}

/// Why a user's membership is being re-evaluated; published as `cause` (SPEC §5).
public enum ChangeCause: String, Sendable {
    case event, time, config, reconciliation
    /// `segmenter rebuild`: the state re-derived from the input, against what was published.
    case rebuild
}

/// What one processed batch did.
public struct BatchOutcome: Sendable, Equatable {
    public var applied = 0
    public var duplicates = 0
    public var deadLettered = 0
    /// Valid events older than the dedupe horizon: dead-lettered, not applied (also in `deadLettered`).
    public var tooOld = 0
    /// Sign-up, profile and account events older than the dedupe horizon: applied anyway (also
    /// in `applied`; applying one again changes nothing, SPEC §7).
    public var idempotentBeyondHorizon = 0
    /// Messages skipped because their offset was already committed (redelivered).
    public var alreadyApplied = 0
    /// Membership changes published (enter/exit, all causes).
    public var membershipChanges = 0
    /// The same, by cause.
    public var membershipChangesByCause: [ChangeCause: Int] = [:]
    /// Valid new events for days a reconciliation already took from the warehouse: recorded,
    /// not added to the day's sums (the warehouse's value stands).
    public var onReconciledDays = 0
    /// New attribute names not stored: their user already held `UserProfile.maximumAttributes`.
    public var attributesDropped = 0
    /// Evaluations at an instant where time alone could change something (a timer's step).
    public var timersFired = 0
    /// Segments whose KPI partials moved, with the cause of the latest move.
    public var kpiCauses: [String: ChangeCause] = [:]
    /// The next offset to consume per input topic, as stored by this commit.
    public var nextOffsets: [String: Int64] = [:]

    public init() {}

    /// Adds another partition's outcome (offsets and KPI causes are per partition: not merged).
    public mutating func add(_ other: BatchOutcome) {
        applied += other.applied
        duplicates += other.duplicates
        deadLettered += other.deadLettered
        tooOld += other.tooOld
        idempotentBeyondHorizon += other.idempotentBeyondHorizon
        alreadyApplied += other.alreadyApplied
        membershipChanges += other.membershipChanges
        membershipChangesByCause.merge(other.membershipChangesByCause, uniquingKeysWith: +)
        onReconciledDays += other.onReconciledDays
        attributesDropped += other.attributesDropped
        timersFired += other.timersFired
    }
}

/// One user's sums on one local day: the row that holds them and the evidence of their events.
public struct UserDay: Hashable, Sendable {
    public let userID: String
    public let day: DayNumber
    public init(_ userID: String, _ day: DayNumber) {
        self.userID = userID
        self.day = day
    }
}

/// What the batch step knows of one user, as last committed (or as the batch leaves it).
public struct UserSlice: Equatable, Sendable {
    /// nil: the user has no state yet.
    public var profile: UserProfile?
    /// Per-day sums from (at least) the first day any window can reach at the batch's clock.
    public var days: [DayNumber: DayAggregate]
    /// Stored memberships: segment → the member's KPI contributions (catalog order).
    public var memberships: [String: [Double?]]
    /// The ids applied on every day that can still take events (complete: a day without an
    /// entry has no id applied), so duplicates are told apart without reading a row. nil: not
    /// read (the user was loaded for a timer, a reconciliation or a config change, where no
    /// event is checked); the store reads it before the user's next event.
    public var evidence: RecentEvidence?
    /// The user's next change by time, when known (see `dueKnown`); waiting events wake the user
    /// apart from it (`PartitionStateReading.usersToWake`).
    public var due: Instant?
    /// false when the timer was not loaded: it is then written whatever it is.
    public var dueKnown: Bool
    /// Events applied to the evidence whose `ts` the pair's clock has not reached yet, by `ts`
    /// then arrival: they take effect, in event-time order with the user's timers, once it does.
    public var pending: [UserEvent]

    public init(profile: UserProfile?, days: [DayNumber: DayAggregate] = [:], evidence: RecentEvidence? = RecentEvidence(),
                memberships: [String: [Double?]] = [:], due: Instant? = nil, dueKnown: Bool = false, pending: [UserEvent] = []) {
        self.pending = pending
        self.profile = profile
        self.days = days
        self.evidence = evidence
        self.memberships = memberships
        self.due = due
        self.dueKnown = dueKnown
    }
}

/// Everything one batch changes, for the store to write in one transaction with the offsets.
public struct BatchEffects: Sendable {
    /// A profile row to write: whole (a new user, attributes, accounts or pre-signup activity
    /// changed) or only its totals (the common case).
    public struct ProfileWrite: Sendable, Equatable {
        public var profile: UserProfile
        public var whole: Bool
    }
    /// A user-day row: sums to add and the day's evidence as it now stands (nil: as the row has
    /// it; a waiting event taking effect for a user loaded for their timer).
    public struct DayWrite: Sendable, Equatable {
        public let userID: String
        public let day: DayNumber
        public var delta: DayAggregate
        public var evidence: EventEvidence?
    }
    /// A membership row: the contributions to store, or nil to delete it.
    public struct MembershipWrite: Sendable, Equatable {
        public let userID: String
        public let segment: String
        public let contributions: [Double?]?
    }
    /// An output message for the outbox.
    public struct Message: Sendable, Equatable {
        public let topic: String
        public let key: [UInt8]?
        public let value: [UInt8]
        /// A null value (a compacted topic's delete marker); `value` is then empty.
        public var tombstone = false

        public init(topic: String, key: [UInt8]?, value: [UInt8], tombstone: Bool = false) {
            self.topic = topic
            self.key = key
            self.value = value
            self.tombstone = tombstone
        }
    }

    public var outcome = BatchOutcome()
    public var profiles: [String: ProfileWrite] = [:]
    /// One per user-day the batch applied events to.
    public var days: [DayWrite] = []
    /// What the batch added to metrics' days (SPEC §4b), in order.
    public var metricDays: [MetricDayWrite] = []
    public var memberships: [MembershipWrite] = []
    /// Timers to arm (an instant) or disarm (nil), per user.
    public var timers: [String: Instant?] = [:]
    /// Per user whose waiting events changed, the events still waiting (empty: none).
    public var pending: [String: [UserEvent]] = [:]
    public var messages: [Message] = []
    /// The membership changes among `messages`, for the users' histories (`explain`).
    public var history: [MembershipChange] = []
    /// The partition's KPI partials after the batch; `changed` says which to write.
    public var partials: KPIPartials
    /// The pair's watermark after the batch, if it moved.
    public var watermark: PairWatermark?
    /// Per input topic, the greatest event time applied, where it moved (the dedupe horizon is
    /// measured in it).
    public var eventTimes: [String: Instant] = [:]
    /// Every user the batch evaluated, as they will be once it commits (for the store's caches).
    public var slices: [String: UserSlice] = [:]

    public init(partials: KPIPartials) { self.partials = partials }

    /// `now` as RFC 3339 text, formatted once for all the batch's messages.
    private var asOf: (instant: Instant, text: String)?

    mutating func asOfText(_ now: Instant) -> String {
        if let asOf, asOf.instant == now { return asOf.text }
        asOf = (now, now.description)
        return asOf!.text
    }
}

/// Contributions as stored: 9 bytes per KPI, a presence byte and the `Double`'s bits, so a
/// stored contribution subtracts exactly what was added, and decoding costs no parsing.
public enum ContributionCodec {
    public static func encode(_ values: [Double?]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 9)
        for value in values {
            bytes.append(value == nil ? 0 : 1)
            withUnsafeBytes(of: (value ?? 0).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) -> [Double?] {
        stride(from: 0, to: bytes.count - 8, by: 9).map { start in
            guard bytes[start] == 1 else { return nil }
            var bits: UInt64 = 0
            for k in 0..<8 { bits |= UInt64(bytes[start + 1 + k]) << (8 * k) }
            return Double(bitPattern: bits)
        }
    }
}

/// Days reconciliation took from the warehouse: an event on one of them is already counted
/// there, so it adds nothing to what was taken (the built-in sums, or the metric counts and sums).
struct FrozenDays {
    let sums: ClosedRange<DayNumber>?
    let metrics: ClosedRange<DayNumber>?
}
