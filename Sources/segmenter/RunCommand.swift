import ArgumentParser
import Foundation
import SegmenterService
import ServiceRuntime
import Ingest

struct Run: AsyncParsableCommand {
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

    func run() async throws {
        let config = try options.load()
        let logger = makeLogger(format: logFormat)
        ServiceMetrics.bootstrap()
        for warning in config.warnings { logger.warning("\(warning)") }
        let reporter = ProgressReporter(logger: logger, every: 5)
        let limit = stopAfterEvents
        let services = SegmenterServices(config: config, logger: logger) { counters in
            reporter.tick(counters)
            if let limit, counters.consumed >= limit { reporter.limitReached() }
        }
        reporter.onLimit = { Task { await services.stop() } }
        let handlers = installSignalHandlers { Task { await services.stop() } }
        if let port = config.httpPort {
            logger.info("HTTP API and dashboard on http://\(config.httpHost):\(port)/ (/healthz, /readyz, /metrics, /api/segments, /api/users/{id}, /api/alerts, /api/reconciliation)")
        }
        do {
            try await services.run()
        } catch {
            logger.error("\(error)")
            throw ExitCode.failure
        }
        let c = services.ingest.counters
        logger.info("stopped: consumed \(c.consumed), applied \(c.applied), duplicates \(c.duplicates), dead-lettered \(c.deadLettered) (\(c.tooOld) older than the dedupe horizon), published \(c.published)")
        if stopAfterEvents != nil, let started = services.ingest.firstMessageAt {
            let took = ContinuousClock.now - started
            let seconds = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
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

/// Logs throughput every few seconds; called on the commit thread only.
final class ProgressReporter: @unchecked Sendable {
    let logger: Logging.Logger
    let interval: Double
    var last = Date()
    var lastConsumed = 0
    var onLimit: (() -> Void)?
    private var limitSignalled = false

    init(logger: Logging.Logger, every interval: Double) {
        self.logger = logger
        self.interval = interval
    }

    func limitReached() {
        guard !limitSignalled else { return }
        limitSignalled = true
        onLimit?()
    }

    func tick(_ c: IngestCounters) {
        let now = Date()
        let elapsed = now.timeIntervalSince(last)
        guard elapsed >= interval else { return }
        let rate = Double(c.consumed - lastConsumed) / elapsed
        logger.info("consumed \(c.consumed) (\(Int(rate))/s), applied \(c.applied), duplicates \(c.duplicates), dead-lettered \(c.deadLettered) (\(c.tooOld) older than the dedupe horizon), published \(c.published)")
        last = now
        lastConsumed = c.consumed
    }
}

import Logging
