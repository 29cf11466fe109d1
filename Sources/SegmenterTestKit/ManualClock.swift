import Foundation
import SegmenterCore
import ServiceRuntime

/// A clock that moves only when told to: tests advance it instead of sleeping.
public final class ManualClock: ServiceClock, @unchecked Sendable {
    private let lock = NSLock()
    private var wall: Instant
    private var monotonic = ContinuousClock.now
    private var sleepers: [UUID: (deadline: Instant, wake: CheckedContinuation<Void, Error>)] = [:]

    public init(wall: Instant) { self.wall = wall }

    public func sleep(until deadline: Instant) async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let ready = lock.withLock {
                    if wall >= deadline || Task.isCancelled { return true }
                    sleepers[id] = (deadline, continuation)
                    return false
                }
                if ready { Task.isCancelled ? continuation.resume(throwing: CancellationError()) : continuation.resume() }
            }
        } onCancel: {
            lock.withLock { sleepers.removeValue(forKey: id) }?.wake.resume(throwing: CancellationError())
        }
    }

    /// How many tasks wait in `sleep(until:)` (tests wait for a loop to be asleep before advancing).
    public var sleeping: Int { lock.withLock { sleepers.count } }

    public var wallNow: Instant { lock.withLock { wall } }
    public var monotonicNow: ContinuousClock.Instant { lock.withLock { monotonic } }

    /// Moves both readings forward by `duration`, waking the sleepers whose deadline passed.
    public func advance(by duration: Duration) {
        let woken: [CheckedContinuation<Void, Error>] = lock.withLock {
            monotonic += duration
            let (seconds, attoseconds) = duration.components
            wall = Instant(nanoseconds: wall.nanoseconds + seconds * Instant.nanosPerSecond + attoseconds / 1_000_000_000)
            let due = sleepers.filter { $0.value.deadline <= wall }
            for id in due.keys { sleepers[id] = nil }
            return due.values.map(\.wake)
        }
        for continuation in woken { continuation.resume() }
    }
}
