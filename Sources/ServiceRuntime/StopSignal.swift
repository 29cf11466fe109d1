import Foundation

/// A flag another thread (a signal handler) sets to ask the loop to stop after its batch.
public final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    public init() {}
    public func stop() { lock.lock(); stopped = true; lock.unlock() }
    public var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }
}
