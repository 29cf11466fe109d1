import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import HTTP
import ServiceConfig
import ServiceRuntime

/// The HTTP routes in process (HummingbirdTesting's router framework, no socket), over a temp
/// state directory: what a client gets when there is no state yet, when the state cannot be
/// read, and when a query is malformed.
@Suite struct HTTPRouteTests {
    let stateDirectory: URL
    let config: SegmenterConfig

    init() throws {
        stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("http-routes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        config = try SegmenterConfig.parse(yaml: """
            state_dir: \(stateDirectory.path)
            segments:
              - {name: spenders, rule: "spend(30d) > 5"}
            alerts:
              - {name: few, segment: spenders, kpi: members, threshold: '< 1'}
            """, source: "http.yaml", environment: [:])
    }

    func answers(_ uri: String, method: HTTPRequest.Method = .get) async throws -> (status: HTTPResponse.Status, body: String) {
        let app = Application(router: HTTPAPI.router(config: config, health: ServiceHealth()))
        return try await app.test(.router) { client in
            try await client.execute(uri: uri, method: method) { ($0.status, String(buffer: $0.body)) }
        }
    }

    static let stateRoutes = ["/api/segments", "/api/segments/spenders", "/api/ingest", "/api/alerts", "/api/reconciliation",
                              "/api/users/u1", "/api/users/u1/explain", "/api/export/features", "/api/drilldown?segment=spenders&kpi=members"]

    @Test(arguments: stateRoutes)
    func withNoStateYetEachRouteSaysSoOrAnswersEmpty(route: String) async throws {
        let (status, body) = try await answers(route)
        if route.hasPrefix("/api/users/") {
            #expect(status == .notFound && body.contains("no state"), "\(route): \(status) \(body)")
        } else {
            #expect(status == .ok, "\(route): \(status) \(body)")
        }
    }

    /// Issue 27: a database that cannot be read used to answer `[]` (or an empty body with 500).
    @Test(arguments: stateRoutes)
    func aStateThatCannotBeReadIsA500WithItsCause(route: String) async throws {
        for name in ["partition-0000.sqlite", "reconciliation.sqlite"] {
            try Data(repeating: 0x5A, count: 8192).write(to: stateDirectory.appendingPathComponent(name))
        }
        let (status, body) = try await answers(route)
        #expect(status == .internalServerError, "\(route): \(status) \(body)")
        let error = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        let message = try #require(error?["error"] as? String, "\(route): \(body)")
        #expect(message.contains("not a database"), "\(route): \(message)")
    }

    @Test func aMalformedInstantIsA400ThatNamesIt() async throws {
        let (status, body) = try await answers("/api/export/features?now=yesterday")
        #expect(status == .badRequest && body.contains("now=yesterday is not an RFC 3339 instant"), "\(status) \(body)")
    }

    @Test func healthAnswersWithoutState() async throws {
        #expect(try await answers("/healthz") == (.ok, #"{"status":"ok"}"#))
        let (status, body) = try await answers("/readyz")
        #expect(status == .serviceUnavailable && body.contains("no partitions assigned yet"))
    }
}
