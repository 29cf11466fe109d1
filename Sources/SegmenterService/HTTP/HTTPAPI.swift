import Foundation
import Hummingbird
import ServiceLifecycle
import SegmenterCore
import SegmenterStore

/// What the HTTP API can ask the running service: is it alive and caught up enough to serve.
public final class ServiceHealth: @unchecked Sendable {
    private let lock = NSLock()
    private var assigned = 0
    private var lastPoll: Date?

    /// Ingest figures and recent KPI values, for the dashboard and `/api/ingest`.
    public let operations = OperationalState()

    public init() {}

    func polled() { lock.lock(); lastPoll = Date(); lock.unlock() }
    func assignment(count: Int) { lock.lock(); assigned = count; lock.unlock() }

    /// Ready: partitions are assigned and restored, the consumer polled the broker recently, and
    /// the consumer lag (summed over owned partitions) is at most `maxLag` (nil: no bound).
    public func readiness(maxLag: Int64? = nil) -> (ready: Bool, reason: String) {
        let lag = operations.snapshot.lag.values.reduce(0, +)
        lock.lock()
        defer { lock.unlock() }
        guard assigned > 0 else { return (false, "no partitions assigned yet") }
        guard let lastPoll, Date().timeIntervalSince(lastPoll) < 10 else { return (false, "the consumer has not polled for 10 s") }
        if let maxLag, lag > maxLag { return (false, "consumer lag \(lag) is above http.ready_max_lag \(maxLag)") }
        return (true, "\(assigned) partitions assigned, lag \(lag)")
    }
}

/// `/healthz`, `/readyz` and the JSON API over the state directory (read-only, beside ingest).
public enum HTTPAPI {
    /// Starts a reconciliation run (or joins the one in progress) and returns its report.
    public typealias Reconcile = @Sendable () async -> ReconciliationReport

    public static func router(config: SegmenterConfig, health: ServiceHealth, reconcile: Reconcile? = nil) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: HTTPAccessMiddleware(access: config.httpAccess))
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: Dashboard.html)))
        }
        router.get("api/ingest") { _, _ in json(ingestJSON(health.operations.snapshot)) }
        router.get("api/history") { request, _ in
            // With ?segment=NAME: that segment's KPIs over time and its alerts' firing periods,
            // from the KPI chain's database; without: the recent samples of every sparkline.
            guard let segment = request.uri.queryParameters.get("segment") else { return json(historyJSON(health.operations.recentSamples)) }
            guard config.catalog.segmentNames.contains(segment) else { return json(error("no segment named \(segment)"), status: .notFound) }
            return try json(SegmentHistory.read(config: config, segment: segment))
        }
        router.get("api/reconciliation") { _, _ in
            let reports = (try? ReconciliationHistory(directory: config.stateDirectory, readOnly: true).recent()) ?? []
            return json("[" + reports.compactMap { try? ReconciliationHistory.encode($0) }.joined(separator: ",") + "]")
        }
        router.post("api/reconciliation/run") { _, _ in
            guard let reconcile else { return json(error("reconciliation is not configured (no reconciliation: in the config)"), status: .notFound) }
            let report = await reconcile()
            return json(try ReconciliationHistory.encode(report), status: report.status == .failed ? .badGateway : .ok)
        }
        router.get("healthz") { _, _ in json("{\"status\":\"ok\"}") }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: ServiceMetrics.exposition())))
        }
        router.get("readyz") { _, _ in
            let (ready, reason) = health.readiness(maxLag: config.readyMaxLag)
            return json(JSONText.object([("ready", ready ? "true" : "false"), ("reason", JSONText.quote(reason))]),
                        status: ready ? .ok : .serviceUnavailable)
        }
        router.get("api/segments") { _, _ in
            guard let reader = try? StateReader(directory: config.stateDirectory) else { return json("[]") }
            let partials = try reader.kpiPartials()
            return json("[" + config.catalog.segmentNames.map { segmentJSON($0, config: config, partials: partials) }.joined(separator: ",") + "]")
        }
        router.get("api/segments/:name") { _, context in
            let name = context.parameters.get("name") ?? ""
            guard config.catalog.segmentNames.contains(name) else { return json(error("unknown segment \(name)"), status: .notFound) }
            let partials = (try? StateReader(directory: config.stateDirectory).kpiPartials()) ?? [:]
            return json(segmentJSON(name, config: config, partials: partials))
        }
        router.get("api/users/:id/explain") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let reader = try? StateReader(directory: config.stateDirectory) else { return json(error("no state yet"), status: .notFound) }
            guard let explanation = try UserExplainer.explain(id, config: config, reader: reader) else {
                return json(error("unknown user \(id)"), status: .notFound)
            }
            return json(explanation.json)
        }
        router.get("api/users/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let reader = try? StateReader(directory: config.stateDirectory) else { return json(error("no state yet"), status: .notFound) }
            let windows = FeatureExport.defaultWindows
            guard let (user, now) = try reader.userAtPairClock(id, firstDay: { FeatureExport.firstDay(now: $0, calendar: config.calendar, windows: windows) }) else {
                return json(error("unknown user \(id)"), status: .notFound)
            }
            let segments = try reader.segments(of: id).map(JSONText.quote).joined(separator: ",")
            return json(JSONText.object([("features", FeatureExport.json(user, now: now, calendar: config.calendar, windows: windows)),
                                         ("segments", "[\(segments)]")]))
        }
        router.get("api/alerts") { _, _ in
            let states = (try? AlertStateReader(directory: config.stateDirectory).read()) ?? [:]
            return json("[" + config.alerts.map { alert in
                let state = states[alert.name]
                return JSONText.object([
                    ("alert", JSONText.quote(alert.name)), ("segment", JSONText.quote(alert.segment)), ("kpi", JSONText.quote(alert.kpi)),
                    ("state", JSONText.quote(state?.state ?? "resolved")), ("value", state?.value.map(JSONText.number) ?? "null"),
                    ("baseline", state?.baseline.map(JSONText.number) ?? "null"), ("drill_down", state?.drillDown ?? "null"),
                ])
            }.joined(separator: ",") + "]")
        }
        return router
    }

    static func segmentJSON(_ name: String, config: SegmenterConfig, partials: [KPIKey: KPIPartial]) -> String {
        let kpis = config.catalog.kpiKeys.filter { $0.segment == name }.map { key in
            (key.kpi, config.catalog.value(of: key, in: partials).map(JSONText.number) ?? "null")
        }
        return JSONText.object([("segment", JSONText.quote(name)),
                                ("rule", config.catalog.segments.first { $0.name == name }.map { JSONText.quote($0.ruleText) } ?? "null"),
                                ("kpis", JSONText.object(kpis))])
    }

    static func ingestJSON(_ i: OperationalState.Ingest) -> String {
        JSONText.object([
            ("now", i.now.map { JSONText.quote($0.description) } ?? "null"), ("consumed", String(i.consumed)), ("applied", String(i.applied)),
            ("duplicates", String(i.duplicates)), ("dead_lettered", String(i.deadLettered)), ("rate", JSONText.number(i.rate)),
            ("lag", JSONText.object(i.lag.sorted { $0.key < $1.key }.map { ($0.key, String($0.value)) })),
            ("outbox_depth", String(i.outboxDepth)), ("timers", String(i.timers)), ("state_bytes", String(i.stateBytes)),
            ("kpi_leader", i.kpiLeader ? "true" : "false"),
            ("held_back_by", i.heldBackBy.map { String($0) } ?? "null"),
            ("pairs", JSONText.object(i.pairs.sorted { $0.key < $1.key }.map { partition, pair in
                let lag = i.lag.filter { $0.key.hasSuffix("/\(partition)") }.values.reduce(0, +)
                return (String(partition), JSONText.object([
                    ("watermark", pair.clock.map { JSONText.quote($0.description) } ?? "null"),
                    ("event_watermark", pair.events.map { JSONText.quote($0.description) } ?? "null"),
                    ("caught_up", pair.caughtUp ? "true" : "false"), ("lag", String(lag)),
                ]))
            })),
        ])
    }

    /// `{segment: {kpi: [[time, value], …]}}`, oldest first.
    static func historyJSON(_ samples: [OperationalState.Sample]) -> String {
        var series: [String: [String: [String]]] = [:]
        for sample in samples {
            for (key, value) in sample.values {
                series[key.segment, default: [:]][key.kpi, default: []].append("[\(JSONText.quote(sample.at.description)),\(value.map(JSONText.number) ?? "null")]")
            }
        }
        return JSONText.object(series.sorted { $0.key < $1.key }.map { segment, kpis in
            (segment, JSONText.object(kpis.sorted { $0.key < $1.key }.map { ($0.key, "[" + $0.value.joined(separator: ",") + "]") }))
        })
    }

    /// A Codable body, keys in snake_case.
    static func json(_ body: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = .sortedKeys
        return json(String(decoding: try encoder.encode(body), as: UTF8.self), status: status)
    }

    static func error(_ message: String) -> String { JSONText.object([("error", JSONText.quote(message))]) }

    static func json(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// The HTTP server as a service of the lifecycle group.
    public static func application(config: SegmenterConfig, health: ServiceHealth, port: Int, reconcile: Reconcile? = nil) -> some Service {
        Application(router: router(config: config, health: health, reconcile: reconcile),
                    configuration: .init(address: .hostname(config.httpHost, port: port), serverName: "segmenter"))
    }
}
