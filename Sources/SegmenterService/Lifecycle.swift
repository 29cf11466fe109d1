import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The service as one swift-service-lifecycle group: HTTP, reconciliation and ingest start in
/// that order and stop in reverse, so a graceful stop (1) stops ingest after its current batch,
/// commits it and drains the outbox (the producer flushes), (2) stops reconciliation, (3) stops
/// HTTP last, so health and metrics answer until the end.
public struct SegmenterServices: Sendable {
    public let ingest: IngestService
    /// The scheduled reconciliation, if the config has one (`demo` runs it on demand).
    public let reconciliation: ReconciliationRunner?
    private let group: ServiceGroup

    /// - Parameter onBatch: progress after each committed batch (logs, `--stop-after-events`).
    public init(config: SegmenterConfig, logger: Logger, onBatch: (@Sendable (IngestCounters) -> Void)? = nil) {
        let ingest = IngestService(config: config, logger: logger)
        self.ingest = ingest
        let reconciliation = ReconciliationRunner(config: config, logger: logger)
        self.reconciliation = reconciliation
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let port = config.httpPort {
            services.append(.init(service: HTTPAPI.application(config: config, health: ingest.health, port: port,
                                                               reconcile: reconciliation?.httpHandler),
                                  serviceName: "http"))
        }
        if let reconciliation { services.append(.init(service: ReconciliationService(runner: reconciliation), serviceName: "reconciliation")) }
        // Ingest ending (a failure, or `--stop-after-events`) stops the whole group gracefully.
        services.append(.init(service: IngestLifecycle(ingest: ingest, reconciliation: reconciliation, onBatch: onBatch),
                              successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup,
                              serviceName: "ingest"))
        group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger))
    }

    public func run() async throws { try await group.run() }

    /// Starts a graceful stop (the first SIGTERM/SIGINT).
    public func stop() async { await group.triggerGracefulShutdown() }
}

/// Ingest runs on its own threads (librdkafka's poll blocks); this bridges it into the group.
struct IngestLifecycle: Service {
    let ingest: IngestService
    let reconciliation: ReconciliationRunner?
    let onBatch: (@Sendable (IngestCounters) -> Void)?

    func run() async throws {
        let stop = StopSignal()
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                Thread.detachNewThread { [ingest, reconciliation, onBatch] in
                    do {
                        try ingest.run(until: stop, onBatch: onBatch, onStarted: { access, partitions in
                            reconciliation?.start(access: access, partitionCount: partitions)
                        })
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onGracefulShutdown: {
            stop.stop()
        }
    }
}

/// Keeps the reconciliation schedule running until the group stops.
struct ReconciliationService: Service {
    let runner: ReconciliationRunner

    func run() async throws {
        try? await gracefulShutdown()
        runner.stop()
    }
}
