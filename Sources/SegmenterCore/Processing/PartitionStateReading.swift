/// What a partition's state answers before a batch, so the loading half of a commit is written
/// once: `BatchProcessor.load` decides which users a batch touches and asks for them; the SQLite
/// store answers from its cache and rows, a test's in-memory partition from dictionaries.
public protocol PartitionStateReading {
    /// The user as last committed: profile, the days from `firstDay` on, memberships, waiting
    /// events; with `evidence`, the event ids kept for deduplication (only users with events to
    /// check need them).
    mutating func slice(of userID: String, firstDay: DayNumber, evidence: Bool) throws -> UserSlice

    /// Users to wake at `clock` (none: empty): those whose timer is due by then, with its instant,
    /// and those with a waiting event the clock reached (`due` nil unless their timer is due too:
    /// their slice's timer stands), each with whether it needs its evidence (it has events waiting
    /// for the clock, which are checked then).
    mutating func usersToWake(at clock: Instant) throws -> [(userID: String, due: Instant?, evidence: Bool)]
}

extension BatchProcessor {
    /// Step 1 of a commit: fills `input.users` (and `dueUsers`, `plan`) with what the batch
    /// touches, read from `state`. `input` already carries the stored offsets, event times and
    /// watermark. Users are read from the pair's clock before the batch on: their windows reach
    /// back from there.
    public func load(_ input: inout Input, from state: inout some PartitionStateReading) throws {
        let plan = plan(input)
        let batchClock = plan.watermark.clock
        let firstDay = (input.watermark.clock ?? batchClock).map { catalog.firstWindowDay(at: $0, calendar: calendar) } ?? 0
        input.users.reserveCapacity(plan.admitted.count)
        for event in plan.admitted where input.users[event.userID] == nil {
            input.users[event.userID] = try state.slice(of: event.userID, firstDay: firstDay, evidence: true)
        }
        if let batchClock {
            let woken = try state.usersToWake(at: batchClock)
            input.dueUsers = woken.map(\.userID)
            for (userID, due, evidence) in woken {
                if input.users[userID] == nil { input.users[userID] = try state.slice(of: userID, firstDay: firstDay, evidence: evidence) }
                guard let due else { continue }
                input.users[userID]!.due = due
                input.users[userID]!.dueKnown = true
            }
        }
        input.plan = plan
    }
}
