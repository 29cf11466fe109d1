import Foundation
import KafkaIO
import SegmenterCore

/// What the commit thread does next, decided without touching Kafka or SQLite (GUIDE §2b, the
/// way swift-kafka-client's consumer returns actions from its state machine): each event — a
/// command from the poll thread, or nothing within the idle wait — becomes a list of actions,
/// which `CommitWorker` carries out in order. The clocks are parameters, so tests drive time.
struct CommitLoop {
    enum State: Equatable {
        case running
        /// The queue closed and everything owed was published: the thread ends.
        case stopped
    }

    enum Event {
        case command(IngestCommand)
        /// Nothing arrived within the idle wait; `queueClosed`: the poll thread has stopped.
        case idle(queueClosed: Bool)
    }

    enum Action {
        /// One transaction per owned partition with the batch's records.
        case commit(DecodedBatch)
        /// Move the watermarks of pairs without new events (an input now read to its end; with
        /// the hybrid clock, `wallClock`), firing the timers due by then.
        case advanceWatermarks(wallClock: Instant?)
        case assign([TopicPartition], Reply<[TopicPartition: StartOffset]>)
        /// Give partitions up (after `emitKPIs(force: true)` and `drainOutbox`, so their next
        /// owner does not send again what is still in flight).
        case revoke([TopicPartition], Reply<Bool>)
        case exclusive(@Sendable (StoreSession?) -> Void)
        /// Announce partials and watermarks; on the KPI leader, publish changed KPIs and alerts.
        case emitKPIs(force: Bool)
        /// Publish outbox rows without waiting (`pumpOutbox`) or until all are delivered.
        case pumpOutbox
        case drainOutbox
        case snapshotTick
        case stop
    }

    let emitInterval: Duration
    let hybridClock: Bool
    private(set) var state = State.running
    private var lastEmit: ContinuousClock.Instant

    init(emitInterval: Duration, hybridClock: Bool, startedAt: ContinuousClock.Instant) {
        self.emitInterval = emitInterval
        self.hybridClock = hybridClock
        lastEmit = startedAt
    }

    /// The actions for `event`, given the monotonic time `now` and the wall clock `wall`.
    mutating func actions(after event: Event, now: ContinuousClock.Instant, wall: Instant) -> [Action] {
        guard state == .running else { return [] }
        var actions: [Action]
        switch event {
        case let .command(.batch(batch)):
            actions = [.commit(batch)]
        case let .command(.assigned(partitions, reply)):
            actions = [.assign(partitions, reply)]
        case let .command(.revoked(partitions, reply)):
            lastEmit = now
            actions = [.emitKPIs(force: true), .drainOutbox, .revoke(partitions, reply)]
        case let .command(.exclusive(body)):
            actions = [.exclusive(body)]
        case .idle(queueClosed: true):
            state = .stopped
            return [.emitKPIs(force: true), .drainOutbox, .stop]
        case .idle(queueClosed: false):
            actions = [.advanceWatermarks(wallClock: hybridClock ? wall : nil)]
        }
        // At most once per emit interval: coalescing keeps the KPI topic readable.
        if now - lastEmit >= emitInterval {
            lastEmit = now
            actions.append(.emitKPIs(force: false))
        }
        return actions + [.pumpOutbox, .snapshotTick]
    }
}

extension CommitLoop.Action {
    /// The action's kind, as the commit thread's timing metric names it.
    var name: String {
        switch self {
        case .commit: "commit"
        case .advanceWatermarks: "advance"
        case .assign: "assign"
        case .revoke: "revoke"
        case .exclusive: "exclusive"
        case .emitKPIs: "emit_kpis"
        case .pumpOutbox: "pump"
        case .drainOutbox: "drain"
        case .snapshotTick: "snapshots"
        case .stop: "stop"
        }
    }
}
