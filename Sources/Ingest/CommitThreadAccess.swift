import Foundation
import ServiceRuntime

/// Reconciliation's way onto the commit thread: each step runs between two ingest batches.
final class CommitThreadAccess: StoreAccess, @unchecked Sendable {
    private let queue: WorkQueue<IngestCommand>

    init(queue: WorkQueue<IngestCommand>) { self.queue = queue }

    func withStores<T: Sendable>(_ body: @escaping @Sendable (StoreSession) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = queue.put(.exclusive { session in
                guard let session else { return continuation.resume(throwing: ServiceError("the service stopped")) }
                continuation.resume(with: Result { try body(session) })
            })
            if !accepted { continuation.resume(throwing: ServiceError("the service is stopping")) }
        }
    }
}
