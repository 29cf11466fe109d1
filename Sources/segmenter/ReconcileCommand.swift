import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KafkaIO
import Logging
import SegmenterCore
import SegmenterService
import SegmenterStore
import ServiceConfig
import ServiceRuntime
import Ingest
import Reconciliation

struct Reconcile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare the state with the warehouse over closed days and take the warehouse's values where they differ.",
        discussion: """
        Per-day totals are compared first; user rows are fetched only for the days that differ. \
        Corrected users are re-evaluated, and their membership changes and KPI deltas are published \
        with cause reconciliation. The report is printed and kept (see `inspect reconciliation`).

        While `segmenter run` is running on the same state directory, `--once` asks it (through \
        its HTTP API, http.port) to run now. Otherwise this process opens the state itself.

        --backfill --from DATE seeds users and days the stream never saw (a new deployment, or \
        input whose retention expired): every day from DATE is compared and filled. Those days \
        then belong to the warehouse, so streaming them again does not count anything twice.
        """
    )

    @OptionGroup var options: ConfigOption
    @Flag(help: "Run one reconciliation now and print its report.") var once = false
    @Flag(help: "Seed state from the warehouse for every closed day from --from.") var backfill = false
    @Option(help: "First day of a backfill (YYYY-MM-DD, in the configured time zone).") var from: String?
    @Option(help: "Partition count of the input topics (default: asked from Kafka, else the state directory's files).")
    var partitions: Int?
    @Flag(help: "Print the report as JSON.") var json = false

    func validate() throws {
        guard once != backfill else { throw ValidationError("give exactly one of --once or --backfill") }
        if backfill && from == nil { throw ValidationError("--backfill needs --from YYYY-MM-DD") }
        if let from, DayCalendar.dayNumber(isoDate: from) == nil { throw ValidationError("--from must be a date like 2026-10-01, not \(from)") }
    }

    func run() async throws {
        let config = try options.load()
        guard let settings = config.reconciliation else {
            throw ValidationError("\(config.source) has no reconciliation: section (warehouse, daily_sql, schedule)")
        }
        let logger = makeLogger()
        var report: ReconciliationReport
        do {
            report = try await reconcileHere(config: config, settings: settings, logger: logger)
        } catch is StateDirectoryLock.Busy {
            guard !backfill else { throw ValidationError("stop `segmenter run` before a backfill: it holds \(config.stateDirectory.path)") }
            guard let port = config.httpPort else {
                throw ValidationError("`segmenter run` holds \(config.stateDirectory.path) and has no http.port to ask; it reconciles on its schedule")
            }
            let policy = "it retries a connection or timeout failure up to \(settings.retries) times, waiting \(settings.retryBackoffSeconds) s, "
                + "doubled each time; its log shows each attempt"
            logger.info("`segmenter run` holds the state; asking it to reconcile now on port \(port) (\(policy))")
            report = try await askRunningService(host: config.httpHost == "0.0.0.0" ? "127.0.0.1" : config.httpHost, port: port,
                                                 token: config.httpAccess.token)
        }
        say(json ? try ReconciliationHistory.encode(report) : "reconciliation \(report.status.rawValue): \(report.summary)")
        if report.status == .failed { throw ExitCode.failure }
    }

    /// Opens the state directly (no `run` holds it), reconciles, and publishes the outputs.
    private func reconcileHere(config: SegmenterConfig, settings: ReconciliationConfig, logger: Logger) async throws -> ReconciliationReport {
        try FileManager.default.createDirectory(at: config.stateDirectory, withIntermediateDirectories: true)
        let lock = try StateDirectoryLock(directory: config.stateDirectory)
        defer { lock.release() }
        let count = try partitionCount(config)
        let access = try DirectStoreAccess(config: config, partitionCount: count)
        let reconciler = Reconciler(config: settings, calendar: config.calendar, access: access, partitionCount: count,
                                    history: try ReconciliationHistory(directory: config.stateDirectory), logger: logger)
        let warehouse = try settings.makeWarehouse()
        let report = await reconciler.run(kind: backfill ? .backfill : .once, from: from.flatMap(DayCalendar.dayNumber(isoDate:)), warehouse: warehouse)
        await warehouse.shutdown()
        let waiting = try access.publishOutputs(config: config)
        if waiting > 0 { logger.warning("\(waiting) output messages wait in the outbox (Kafka unreachable?); `segmenter run` publishes them") }
        return report
    }

    private func partitionCount(_ config: SegmenterConfig) throws -> Int {
        if let partitions { return partitions }
        if let producer = try? KafkaProducer(configuration: config.kafka),
           let count = try? producer.partitionCount(of: config.topics.activity, timeoutMs: 5000) {
            return count
        }
        let files = partitionFilesCount(in: config.stateDirectory)
        guard files > 0 else {
            throw ValidationError("cannot tell the input topics' partition count: Kafka is unreachable and the state directory is empty; pass --partitions N")
        }
        return files
    }

    private func askRunningService(host: String, port: Int, token: String?) async throws -> ReconciliationReport {
        var request = URLRequest(url: URL(string: "http://\(host):\(port)/api/reconciliation/run")!)
        request.httpMethod = "POST"
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        request.timeoutInterval = 3600
        let (data, _) = try await URLSession.shared.data(for: request)
        return try JSONDecoder().decode(ReconciliationReport.self, from: data)
    }
}
