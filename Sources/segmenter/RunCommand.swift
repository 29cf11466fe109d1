import ArgumentParser
import Foundation
import SegmenterService

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the service: consume activity and billing, keep state, publish outputs.",
        discussion: """
        Offsets are stored in SQLite with the state, so a crash or SIGKILL resumes exactly where \
        the last committed batch ended. SIGINT/SIGTERM stop after the current batch and drain the outbox.
        """
    )

    @OptionGroup var options: ConfigOption
    @Option(help: "Log format on stderr: text or json (one object per line).") var logFormat: LogFormat = .text

    @Option(help: ArgumentHelp("Stop once this many messages are consumed and committed, and print figures (benchmarks).",
                               visibility: .hidden))
    var stopAfterEvents: Int?

    func run() throws {
        let config = try options.load()
        let logger = makeLogger(format: logFormat)
        ServiceMetrics.bootstrap()
        let stop = StopSignal()
        let handlers = installSignalHandlers(stop)
        let service = IngestService(config: config, logger: logger)
        let reporter = ProgressReporter(service: service, logger: logger, every: 5)
        let reconciliation = ReconciliationRunner(config: config, logger: logger)
        var reconcile: HTTPAPI.Reconcile?
        if let reconciliation { reconcile = { await reconciliation.runNow() } }
        let http = config.httpPort.map { port -> Task<Void, Error> in
            logger.info("HTTP API on http://\(config.httpHost):\(port) (/healthz, /readyz, /metrics, /api/segments, /api/users/{id}, /api/alerts, /api/reconciliation)")
            return HTTPAPI.serve(config: config, health: service.health, port: port, reconcile: reconcile)
        }
        defer { http?.cancel() }
        defer { reconciliation?.stop() }
        var firstBatch: Date?
        do {
            try service.run(until: stop, onBatch: { counters in
                reporter.tick()
                if firstBatch == nil { firstBatch = Date() }
                if let limit = stopAfterEvents, counters.consumed >= limit { stop.stop() }
            }, onStarted: { access, partitionCount in
                reconciliation?.start(access: access, partitionCount: partitionCount)
            })
        } catch {
            logger.error("\(error)")
            throw ExitCode.failure
        }
        let c = service.counters
        logger.info("stopped: consumed \(c.consumed), applied \(c.applied), duplicates \(c.duplicates), dead-lettered \(c.deadLettered), published \(c.published)")
        if stopAfterEvents != nil, let firstBatch {
            let seconds = Date().timeIntervalSince(firstBatch)
            say("{\"consumed\":\(c.consumed),\"seconds\":\(seconds),\"events_per_second\":\(Int(Double(c.consumed) / seconds)),\"peak_rss_kib\":\(peakResidentKiB()),\"batches\":\(c.batches)}")
        }
        _ = handlers
    }
}

/// VmHWM from /proc: the process's peak resident set size.
func peakResidentKiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return -1 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
}

/// Logs throughput every few seconds.
final class ProgressReporter {
    let service: IngestService
    let logger: Logging.Logger
    let interval: Double
    var last = Date()
    var lastConsumed = 0

    init(service: IngestService, logger: Logging.Logger, every interval: Double) {
        self.service = service
        self.logger = logger
        self.interval = interval
    }

    func tick() {
        let now = Date()
        let elapsed = now.timeIntervalSince(last)
        guard elapsed >= interval else { return }
        let c = service.counters
        let rate = Double(c.consumed - lastConsumed) / elapsed
        logger.info("consumed \(c.consumed) (\(Int(rate))/s), applied \(c.applied), duplicates \(c.duplicates), dead-lettered \(c.deadLettered), published \(c.published)")
        last = now
        lastConsumed = c.consumed
    }
}

import Logging
