import Foundation
import Testing
@testable import Ingest

/// Ingest's poll loop blocks in librdkafka: it runs as a task on a thread the service owns,
/// never on the cooperative pool (two threads here, which HTTP and reconciliation need).
@Suite struct DedicatedThreadExecutorTests {
    /// Blocks the thread until `isReleased`, as librdkafka's poll does; then says where it ran.
    static func block(until released: NSCondition, _ isReleased: () -> Bool, on executor: DedicatedThreadExecutor) -> Bool {
        released.lock()
        while !isReleased() { released.wait() }
        released.unlock()
        return executor.isCurrent
    }
    nonisolated static func blockingWork(until released: NSCondition, _ isReleased: @escaping () -> Bool,
                                         on executor: DedicatedThreadExecutor) async -> Bool {
        block(until: released, isReleased, on: executor)
    }
    nonisolated static func runsOn(_ executor: DedicatedThreadExecutor) async -> Bool { executor.isCurrent }

    static func release(_ released: NSCondition, _ open: () -> Void) {
        released.lock()
        open()
        released.broadcast()
        released.unlock()
    }

    @Test func aTaskThatPrefersItRunsOnItsThreadAndBlocksNoPoolThread() async throws {
        let executor = DedicatedThreadExecutor(name: "seg-test-poll")
        defer { executor.shutdown() }
        #expect(await withTaskExecutorPreference(executor) { await Self.runsOn(executor) })
        #expect(await !Self.runsOn(executor), "without the preference, the pool")
        // A task blocked on it leaves the pool free: other tasks run meanwhile.
        let released = NSCondition()
        nonisolated(unsafe) var open = false
        let blocked = Task { await withTaskExecutorPreference(executor) { await Self.blockingWork(until: released, { open }, on: executor) } }
        #expect(await Task.detached { await Self.runsOn(executor) }.value == false)
        Self.release(released) { open = true }
        #expect(await blocked.value)
    }
}
