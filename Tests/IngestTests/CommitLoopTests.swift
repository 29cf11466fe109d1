import Foundation
import Testing
import SegmenterTestKit
import SegmenterCore
@testable import Ingest
import ServiceRuntime

/// The commit thread's decisions, with a clock the test moves (no sleeping, no Kafka, no SQLite).
@Suite struct CommitLoopTests {
    let clock = ManualClock(wall: Instant(seconds: 1_795_000_000))

    func names(_ actions: [CommitLoop.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .commit: "commit"
            case let .advanceWatermarks(wall): "advance(\(wall.map { "\($0)" } ?? "events only"))"
            case .assign: "assign"
            case .revoke: "revoke"
            case .exclusive: "exclusive"
            case let .emitKPIs(force): force ? "emit(force)" : "emit"
            case .pumpOutbox: "pump"
            case .drainOutbox: "drain"
            case .snapshotTick: "snapshots"
            case .stop: "stop"
            }
        }
    }

    func step(_ machine: inout CommitLoop, _ event: CommitLoop.Event, after: Duration = .milliseconds(50)) -> [String] {
        clock.advance(by: after)
        return names(machine.actions(after: event, now: clock.monotonicNow, wall: clock.wallNow))
    }

    @Test func kpisAreEmittedAtMostOncePerInterval() {
        var machine = CommitLoop(emitInterval: .milliseconds(200), hybridClock: false, startedAt: clock.monotonicNow)
        // Twelve batches 50 ms apart: an emit after the 4th, 8th and 12th only
        var emits: [Int] = []
        for index in 1...12 where step(&machine, .command(.batch(DecodedBatch(polledAt: clock.monotonicNow)))).contains("emit") { emits.append(index) }
        #expect(emits == [4, 8, 12])
        #expect(step(&machine, .command(.batch(DecodedBatch(polledAt: clock.monotonicNow)))) == ["commit", "pump", "snapshots"])
    }

    @Test func anIdleLoopMovesWatermarksWithTheWallClockOnlyWhenHybrid() {
        var event = CommitLoop(emitInterval: .seconds(10), hybridClock: false, startedAt: clock.monotonicNow)
        #expect(step(&event, .idle(queueClosed: false)) == ["advance(events only)", "pump", "snapshots"])
        var hybrid = CommitLoop(emitInterval: .seconds(10), hybridClock: true, startedAt: clock.monotonicNow)
        // An hour passes on the injected clock: the idle step carries its wall time
        let later = clock.wallNow.adding(seconds: 3600)
        #expect(step(&hybrid, .idle(queueClosed: false), after: .seconds(3600)) == ["advance(\(later))", "emit", "pump", "snapshots"])
    }

    @Test func aRevocationPublishesAndDrainsBeforeGivingPartitionsUp() {
        var machine = CommitLoop(emitInterval: .seconds(10), hybridClock: false, startedAt: clock.monotonicNow)
        #expect(step(&machine, .command(.revoked([], Reply<Bool>()))) == ["emit(force)", "drain", "revoke", "pump", "snapshots"])
    }

    @Test func aClosedQueuePublishesWhatIsOwedAndStops() {
        var machine = CommitLoop(emitInterval: .seconds(10), hybridClock: true, startedAt: clock.monotonicNow)
        #expect(step(&machine, .idle(queueClosed: true)) == ["emit(force)", "drain", "stop"])
        #expect(machine.state == .stopped)
        #expect(step(&machine, .command(.batch(DecodedBatch(polledAt: clock.monotonicNow)))).isEmpty)
    }
}
