import Foundation
import Hummingbird
import HummingbirdCore
import ServiceLifecycle
import SegmenterCore
import SegmenterStore
import ServiceConfig
import ServiceRuntime

/// `/healthz`, `/readyz` and the JSON API over the state directory (read-only, beside ingest).
public enum HTTPAPI {
    /// Starts a reconciliation run (or joins the one in progress) and returns its report.
    public typealias Reconcile = @Sendable () async -> ReconciliationReport

    public static func router(config: SegmenterConfig, health: ServiceHealth, reconcile: Reconcile? = nil) -> Router<BasicRequestContext> {
        // HEAD answers every GET route, without the body.
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.add(middleware: HTTPAccessMiddleware(access: config.httpAccess))
        router.add(middleware: FailuresAnsweredWithTheirCause())
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: Dashboard.html)))
        }
        router.get("api/ingest") { _, _ in
            // Skipped input offsets are kept with each partition's state (they outlive a restart).
            let skipped = try StateReader.ifAny(directory: config.stateDirectory)?.skippedOffsets()
            return try json(APIBody.Ingest(health.operations.snapshot, skipped: skipped ?? []))
        }
        router.get("api/history") { request, _ in
            // With ?segment=NAME: that segment's KPIs over time and its alerts' firing periods,
            // from the KPI chain's database; without: the recent samples of every sparkline.
            guard let segment = request.uri.queryParameters.get("segment") else { return try json(APIBody.sparklines(health.operations.recentSamples)) }
            guard config.catalog.segmentNames.contains(segment) else { return try json(error("no segment named \(segment)"), status: .notFound) }
            return try json(SegmentHistory.read(config: config, segment: segment))
        }
        router.get("api/reconciliation") { _, _ in
            // No history file yet: no run has started.
            let file = config.stateDirectory.appendingPathComponent(ReconciliationHistory.fileName).path
            guard FileManager.default.fileExists(atPath: file) else { return json("[]") }
            let reports = try ReconciliationHistory(directory: config.stateDirectory, readOnly: true).recent()
            return json("[" + (try reports.map { try ReconciliationHistory.encode($0) }).joined(separator: ",") + "]")
        }
        router.post("api/reconciliation/run") { _, _ in
            guard let reconcile else { return try json(error("reconciliation is not configured (no reconciliation: in the config)"), status: .notFound) }
            let report = await reconcile()
            return json(try ReconciliationHistory.encode(report), status: report.status == .failed ? .badGateway : .ok)
        }
        router.get("healthz") { _, _ in try json(["status": "ok"]) }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: ServiceMetrics.exposition())))
        }
        router.get("readyz") { _, _ in
            let (ready, reason) = health.readiness(maxLag: config.readyMaxLag)
            return try json(APIBody.Readiness(ready: ready, reason: reason), status: ready ? .ok : .serviceUnavailable)
        }
        router.get("api/segments") { _, _ in
            let partials = try StateReader.ifAny(directory: config.stateDirectory)?.kpiPartials() ?? [:]
            return try json(config.catalog.segmentNames.map { APIBody.Segment($0, config: config, partials: partials) })
        }
        router.get("api/segments/:name") { _, context in
            let name = context.parameters.get("name") ?? ""
            guard config.catalog.segmentNames.contains(name) else { return try json(error("unknown segment \(name)"), status: .notFound) }
            let partials = try StateReader.ifAny(directory: config.stateDirectory)?.kpiPartials() ?? [:]
            return try json(APIBody.Segment(name, config: config, partials: partials))
        }
        router.get("api/users/:id/explain") { _, context in
            let id = userID(context)
            guard let reader = try StateReader.ifAny(directory: config.stateDirectory) else { return try json(error("no state yet"), status: .notFound) }
            guard let explanation = try UserExplainer.explain(id, config: config, reader: reader) else {
                return try json(error("unknown user \(id)"), status: .notFound)
            }
            return try json(explanation)
        }
        router.get("api/drilldown") { request, _ in
            // The sums of a drill-down over the partitions this instance owns (`scope=owned`):
            // the KPI leader merges every instance's into the alert's drill-down.
            guard let segment = request.uri.queryParameters.get("segment"), let kpi = request.uri.queryParameters.get("kpi"),
                  config.catalog.kpiKeys.contains(KPIKey(segment: segment, kpi: kpi)) else {
                return try json(error("give segment= and kpi= of a configured KPI"), status: .badRequest)
            }
            guard let reader = try stateReader(request, config: config, health: health) else {
                return try json(DrillDownAccumulator(kind: config.catalog.kpis.first { $0.name == kpi }?.kind ?? .sum))
            }
            return try json(reader.drillDown(catalog: config.catalog, calendar: config.calendar, segment: segment, kpi: kpi))
        }
        router.get("api/export/features") { request, _ in
            // `export features` asks every instance with `scope=owned`.
            let windows: [Int]
            switch FeatureExport.windows(query: request.uri.queryParameters.get("windows")) {
            case let .success(checked): windows = checked
            case let .failure(problem): return try json(error(problem.description), status: .badRequest)
            }
            var now: Instant?
            if let text = request.uri.queryParameters.get("now") {
                guard case let .success(instant) = RFC3339.parse(text) else {
                    return try json(error("now=\(text) is not an RFC 3339 instant (e.g. 2026-12-06T12:00:00Z)"), status: .badRequest)
                }
                now = instant
            }
            guard let reader = try stateReader(request, config: config, health: health) else {
                return Response(status: .ok, headers: [.contentType: "application/x-ndjson"])
            }
            var lines = ""
            _ = try FeatureExport.export(from: reader, now: now, calendar: config.calendar, windows: windows, metrics: config.catalog.metrics) { lines += $0 + "\n" }
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: .init(byteBuffer: ByteBuffer(string: lines)))
        }
        router.get("api/users/:id") { request, context in
            let id = userID(context)
            // With `scope=owned`, only the owner finds the user: how `inspect user` finds it.
            guard let reader = try stateReader(request, config: config, health: health) else {
                return try json(error("no state here (none yet, or with scope=owned: no partition owned)"), status: .notFound)
            }
            let windows = FeatureExport.defaultWindows
            guard let (user, now) = try reader.userAtPairClock(id, firstDay: { FeatureExport.firstDay(now: $0, calendar: config.calendar, windows: windows) }) else {
                return try json(error("unknown user \(id)"), status: .notFound)
            }
            return try json(APIBody.User(features: FeatureExport.fields(user, now: now, calendar: config.calendar, windows: windows, metrics: config.catalog.metrics),
                                         segments: try reader.segments(of: id), partition: user.partition, instance: config.instanceName))
        }
        router.get("api/alerts") { _, _ in
            let states = try AlertStateReader(directory: config.stateDirectory).read()
            return try json(config.alerts.map { APIBody.Alert($0, state: states[$0.name]) })
        }
        return router
    }

    /// The state directory's databases; with `scope=owned`, only those of the partitions this
    /// instance owns now (a partition that moved away leaves a stale copy behind). nil: nothing to read.
    static func stateReader(_ request: Request, config: SegmenterConfig, health: ServiceHealth) throws -> StateReader? {
        let only = request.uri.queryParameters.get("scope") == "owned" ? Set(health.operations.snapshot.pairs.keys) : nil
        guard only?.isEmpty != true else { return nil }
        return try StateReader.ifAny(directory: config.stateDirectory, only: only)
    }

    /// A Codable body. Keys are spelled by each type's CodingKeys: a key strategy would also
    /// rewrite dictionary keys (a KPI or attribute named in camelCase).
    static func json(_ body: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return json(String(decoding: try encoder.encode(body), as: UTF8.self), status: status)
    }

    static func error(_ message: String) -> APIBody.Error { APIBody.Error(error: message) }

    /// The `:id` of a user route, percent-decoded: an id may hold `@`, spaces, `/`, `?`, `#`, `%`
    /// or any other character, which a client encodes (issue 25: `alice%40example.com` was
    /// looked up as written). Not valid percent-encoding: taken as written.
    static func userID(_ context: some RequestContext) -> String {
        let raw = context.parameters.get("id") ?? ""
        return raw.removingPercentEncoding ?? raw
    }

    static func json(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// The HTTP server as a service of the lifecycle group.
    public static func application(config: SegmenterConfig, health: ServiceHealth, port: Int, reconcile: Reconcile? = nil) -> some Service {
        Application(router: router(config: config, health: health, reconcile: reconcile),
                    // A connection idle (or a request half-sent) for 30 s is closed; at most 256 at a time.
                    server: .http1(configuration: .init(idleTimeout: .seconds(30))),
                    configuration: .init(address: .hostname(config.httpHost, port: port), serverName: "segmenter",
                                         availableConnectionsDelegate: MaximumAvailableConnections(256)))
    }
}

/// A route that throws (a database that cannot be read, a query that fails) answers 500 with
/// the cause as `{"error": …}`, never an empty body: a client or an operator sees why. Errors
/// that carry their own status (Hummingbird's `HTTPError`) keep it.
struct FailuresAnsweredWithTheirCause<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPResponseError {
            throw error
        } catch {
            return try HTTPAPI.json(HTTPAPI.error("\(request.uri.path) failed: \(error)"), status: .internalServerError)
        }
    }
}
