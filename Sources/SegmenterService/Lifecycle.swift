import Foundation
import SegmenterCore
import Hummingbird
import Logging
import ServiceLifecycle
import ServiceConfig
import Outputs
import Ingest
import Reconciliation
import HTTP

/// The service as one swift-service-lifecycle group: HTTP, reconciliation, alert delivery and
/// ingest start in that order and stop in reverse, so a graceful stop (1) stops ingest after its
/// current batch, commits it and drains the outbox (the producer flushes), (2) stops alert
/// delivery and reconciliation, (3) stops HTTP last, so health and metrics answer until the end.
public struct SegmenterServices: Sendable {
    public let ingest: IngestService
    /// The scheduled reconciliation, if the config has one (`demo` runs it on demand).
    public let reconciliation: ReconciliationRunner?
    private let group: ServiceGroup

    /// - Parameter onBatch: progress after each committed batch (logs, `--stop-after-events`).
    public init(config: SegmenterConfig, logger: Logger, onBatch: (@Sendable (IngestCounters) -> Void)? = nil) {
        let clock = SystemClock()  // one clock for every flow
        let reconciliation = ReconciliationRunner(config: config, logger: logger, clock: clock)
        self.reconciliation = reconciliation
        let ingest = IngestService(config: config, logger: logger, clock: clock, onBatch: onBatch) { access, partitions in
            reconciliation?.start(access: access, partitionCount: partitions)
        }
        self.ingest = ingest
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let port = config.httpPort {
            services.append(.init(service: HTTPAPI.application(config: config, health: ingest.health, port: port,
                                                               reconcile: reconciliation?.httpHandler),
                                  serviceName: "http"))
        }
        if let reconciliation { services.append(.init(service: ReconciliationService(runner: reconciliation), serviceName: "reconciliation")) }
        if let delivery = config.alertDelivery {
            services.append(.init(service: AlertDeliveryService(deliverer: AlertDeliverer(config: config, delivery: delivery, logger: logger), logger: logger),
                                  serviceName: "alert-delivery"))
        }
        // Ingest ending (a failure, or `--stop-after-events`) stops the whole group gracefully.
        services.append(.init(service: ingest, successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "ingest"))
        group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger))
    }

    public func run() async throws { try await group.run() }

    /// Starts a graceful stop (the first SIGTERM/SIGINT).
    public func stop() async { await group.triggerGracefulShutdown() }
}

/// Keeps the reconciliation schedule running until the group stops.
struct ReconciliationService: Service {
    let runner: ReconciliationRunner

    func run() async throws {
        try? await gracefulShutdown()
        runner.stop()
    }
}
