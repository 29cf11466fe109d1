import Foundation

/// An exclusive `flock` on `STATE_DIR/segmenter.lock`, held by the process that writes the
/// partition databases (`run`, or a standalone `reconcile`), so two writers never mix their
/// in-memory caches over one state. Released by the kernel if the process dies.
public final class StateDirectoryLock: @unchecked Sendable {
    private var descriptor: Int32

    /// Thrown when another process holds the lock.
    public struct Busy: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "another segmenter process (run or reconcile) is using the state directory (\(path) is locked)" }
    }

    public init(directory: URL) throws {
        let path = directory.appendingPathComponent("segmenter.lock").path
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw ServiceError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw Busy(path: path)
        }
    }

    public func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
