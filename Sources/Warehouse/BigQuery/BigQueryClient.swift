import AsyncHTTPClient
import SegmenterCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A named query parameter of `jobs.query` (standard SQL, `@name`).
enum BigQueryParameter: Sendable {
    case date(String)
    case string(String)
    case int64(Int64)
    case strings([String])

    var json: [String: Any] {
        switch self {
        case let .date(day): ["parameterType": ["type": "DATE"], "parameterValue": ["value": day]]
        case let .string(text): ["parameterType": ["type": "STRING"], "parameterValue": ["value": text]]
        case let .int64(number): ["parameterType": ["type": "INT64"], "parameterValue": ["value": String(number)]]
        case let .strings(values):
            ["parameterType": ["type": "ARRAY", "arrayType": ["type": "STRING"]],
             "parameterValue": ["arrayValues": values.map { ["value": $0] }]]
        }
    }
}

/// The REST calls a run makes: `jobs.query`, then `jobs.getQueryResults` while the job is not
/// complete and for every further page. Counts the bytes it reads, per step.
final class BigQueryClient: Sendable {
    let settings: BigQuerySettings
    let http: HTTPClient
    private let token: ServiceAccountToken?
    /// The job's deadline and the token's expiry are read from it.
    private let clock: any ServiceClock

    init(settings: BigQuerySettings, clock: any ServiceClock) throws {
        self.settings = settings
        self.clock = clock
        http = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            if case let .serviceAccountKey(path) = settings.auth { token = try ServiceAccountToken(keyFile: path, http: http) } else { token = nil }
        } catch {
            try? http.syncShutdown()
            throw error
        }
    }

    func shutdown() async { try? await http.shutdown() }

    /// The answer of one query: column types from the schema, rows as text or null.
    struct Result {
        var types: [String] = []
        var rows: [[String?]] = []
        var bytes = 0
    }

    func query(_ sql: String, parameters: [String: BigQueryParameter], step: String) async throws -> Result {
        let deadline = clock.monotonicNow + .seconds(settings.queryTimeoutSeconds)
        var body: [String: Any] = ["query": sql, "useLegacySql": false, "parameterMode": "NAMED",
                                   "queryParameters": parameters.sorted { $0.key < $1.key }.map { ["name": $0.key].merging($0.value.json) { $1 } },
                                   "timeoutMs": Self.pollMillis, "maxResults": settings.pageSize]
        if let location = settings.location { body["location"] = location }
        if let dataset = settings.dataset { body["defaultDataset"] = ["projectId": settings.project, "datasetId": dataset] }
        var result = Result()
        var page = try await call(step: step, method: .POST, path: "queries", query: [], body: body, into: &result)
        // Not finished within `timeoutMs`: ask again (no rows yet) until it is, or the deadline.
        while page.jobComplete != true {
            guard clock.monotonicNow < deadline else { throw WarehouseError(step: step, message: "the job did not finish within \(settings.queryTimeoutSeconds) s", retryable: true) }
            page = try await results(of: page, pageToken: nil, step: step, into: &result)
        }
        result.types = page.schema?.fields.map(\.type) ?? []
        result.rows.append(contentsOf: page.rows?.map(\.values) ?? [])
        while let next = page.pageToken {
            page = try await results(of: page, pageToken: next, step: step, into: &result)
            result.rows.append(contentsOf: page.rows?.map(\.values) ?? [])
        }
        return result
    }

    private static let pollMillis = 10_000

    private func results(of page: QueryPage, pageToken: String?, step: String, into result: inout Result) async throws -> QueryPage {
        guard let job = page.jobReference?.jobId else { throw WarehouseError(step: step, message: "the answer names no job") }
        var query = [("timeoutMs", String(Self.pollMillis)), ("maxResults", String(settings.pageSize))]
        if let location = page.jobReference?.location ?? settings.location { query.append(("location", location)) }
        if let pageToken { query.append(("pageToken", pageToken)) }
        return try await call(step: step, method: .GET, path: "queries/\(job)", query: query, body: nil, into: &result)
    }

    private func call(step: String, method: HTTPMethod, path: String, query: [(String, String)], body: [String: Any]?,
                      into result: inout Result) async throws -> QueryPage {
        var components = URLComponents(string: settings.endpoint.trimmingSuffix("/") + "/bigquery/v2/projects/\(settings.project)/\(path)")!
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        var request = HTTPClientRequest(url: components.url!.absoluteString)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        switch settings.auth {
        case let .accessToken(token): request.headers.add(name: "Authorization", value: "Bearer \(token)")
        case .serviceAccountKey: request.headers.add(name: "Authorization", value: "Bearer \(try await token!.token(now: clock.wallNow.date))")
        case .none: break
        }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(max(settings.queryTimeoutSeconds, 30)))
            bytes = try await response.body.collect(upTo: 512 << 20)
        } catch {
            throw WarehouseError(step: step, message: "\(settings.endpoint) did not answer: \(error)", retryable: true)
        }
        result.bytes += bytes.readableBytes
        let page = try? JSONDecoder().decode(QueryPage.self, from: bytes)
        // Job errors arrive as an `error` object (HTTP 4xx/5xx) or as `errors` of a finished job.
        // 429 and 5xx are the service's state at the moment; other answers are final.
        let retryable = response.status.code == 429 || response.status.code >= 500
        if let message = page?.error?.message ?? page?.errors?.first?.message {
            throw WarehouseError(step: step, message: message + (page?.error.map { " (HTTP \($0.code ?? Int(response.status.code)))" } ?? ""),
                                 retryable: retryable)
        }
        guard response.status == .ok, let page else {
            throw WarehouseError(step: step, message: "HTTP \(response.status.code) from \(settings.endpoint)", retryable: retryable)
        }
        return page
    }
}

/// The fields of a `jobs.query` / `jobs.getQueryResults` answer that a run reads.
struct QueryPage: Decodable {
    struct JobReference: Decodable {
        let jobId: String?
        let location: String?
    }
    struct Schema: Decodable {
        struct Field: Decodable { let type: String }
        let fields: [Field]
    }
    struct Row: Decodable {
        struct Cell: Decodable { let v: String? }
        let f: [Cell]
        var values: [String?] { f.map(\.v) }
    }
    struct ErrorProto: Decodable {
        let message: String?
        let code: Int?
    }

    let jobReference: JobReference?
    let jobComplete: Bool?
    let schema: Schema?
    let rows: [Row]?
    let pageToken: String?
    let errors: [ErrorProto]?
    let error: ErrorProto?
}

private extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
