import Foundation

/// A task executor with one thread of its own, for work that blocks: librdkafka's poll and the
/// batches handed to the commit thread. Tasks that prefer it (`withTaskExecutorPreference`) run
/// their jobs there instead of on the cooperative pool, which is two threads here and which
/// the HTTP server and reconciliation need. The thread ends with `shutdown()`.
final class DedicatedThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let jobs = NSCondition()
    private var queue: [UnownedJob] = []
    private var stopping = false
    private var thread: pthread_t?

    /// Whether the caller runs on this executor's thread.
    var isCurrent: Bool { jobs.withLock { thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false } }

    init(name: String) {
        let thread = Thread { [self] in runJobs() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.lock()
        queue.append(job)
        jobs.signal()
        jobs.unlock()
    }

    /// Ends the thread once the jobs queued so far ran.
    func shutdown() {
        jobs.lock()
        stopping = true
        jobs.signal()
        jobs.unlock()
    }

    private func runJobs() {
        jobs.withLock { thread = pthread_self() }
        while true {
            jobs.lock()
            while queue.isEmpty && !stopping { jobs.wait() }
            if queue.isEmpty {
                jobs.unlock()
                return
            }
            let job = queue.removeFirst()
            jobs.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
