import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
@testable import Warehouse

/// A throwaway dataset in the bqemulator server `scripts/test` starts
/// (`SEGMENTER_TEST_BIGQUERY=http://host:port`), with typed tables: `daily` (DATE, NUMERIC,
/// INT64, FLOAT64) and `signups` (TIMESTAMP), filled through `insertAll`.
struct BigQueryFixture {
    static let project = "segmenter-test"
    static var endpoint: String? { ProcessInfo.processInfo.environment["SEGMENTER_TEST_BIGQUERY"] }

    let dataset = "ds_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
    let endpoint: String

    init() throws {
        guard let endpoint = Self.endpoint else { throw FixtureError.noServer }
        self.endpoint = endpoint
    }

    var queries: WarehouseQueries {
        WarehouseQueries(daily: "SELECT user_id, day, spend, activities, active_seconds FROM \(dataset).daily",
                         signups: "SELECT user_id, signup_at FROM \(dataset).signups")
    }

    func settings(pageSize: Int = 10_000) -> BigQuerySettings {
        var settings = BigQuerySettings(project: Self.project)
        settings.endpoint = endpoint
        settings.pageSize = pageSize
        settings.queryTimeoutSeconds = 60
        return settings
    }

    func create(_ rows: WarehouseRows) async throws {
        let base = "\(endpoint)/bigquery/v2/projects/\(Self.project)"
        try await post("\(base)/datasets", ["datasetReference": ["projectId": Self.project, "datasetId": dataset]])
        func field(_ name: String, _ type: String) -> [String: String] { ["name": name, "type": type] }
        try await post("\(base)/datasets/\(dataset)/tables", [
            "tableReference": ["projectId": Self.project, "datasetId": dataset, "tableId": "daily"],
            "schema": ["fields": [field("user_id", "STRING"), field("day", "DATE"), field("spend", "NUMERIC"),
                                  field("activities", "INT64"), field("active_seconds", "FLOAT64")]]])
        try await post("\(base)/datasets/\(dataset)/tables", [
            "tableReference": ["projectId": Self.project, "datasetId": dataset, "tableId": "signups"],
            "schema": ["fields": [field("user_id", "STRING"), field("signup_at", "TIMESTAMP")]]])
        let daily: [[String: Any]] = rows.daily.map {
            ["json": ["user_id": $0.user, "day": $0.day, "spend": $0.spend, "activities": $0.activities, "active_seconds": Double($0.seconds)!]]
        }
        for start in stride(from: 0, to: daily.count, by: 500) {
            try await post("\(base)/datasets/\(dataset)/tables/daily/insertAll", ["rows": Array(daily[start..<min(start + 500, daily.count)])])
        }
        try await post("\(base)/datasets/\(dataset)/tables/signups/insertAll",
                       ["rows": rows.signups.map { ["json": ["user_id": $0.user, "signup_at": $0.at]] }])
    }

    func drop() async {
        var request = URLRequest(url: URL(string: "\(endpoint)/bigquery/v2/projects/\(Self.project)/datasets/\(dataset)?deleteContents=true")!)
        request.httpMethod = "DELETE"
        _ = try? await URLSession.shared.data(for: request)
    }

    @discardableResult
    func post(_ url: String, _ body: [String: Any]) async throws -> Data {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, response) = try await URLSession.shared.data(for: request)
        guard (response as? HTTPURLResponse)?.statusCode == 200,
              ((try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["insertErrors"] as? [Any] ?? []).isEmpty else {
            throw FixtureError.refused(url, String(decoding: data, as: UTF8.self))
        }
        return data
    }

    enum FixtureError: Error, CustomStringConvertible {
        case noServer
        case refused(String, String)
        var description: String {
            switch self {
            case .noServer: "SEGMENTER_TEST_BIGQUERY is not set: run the tests through scripts/test, which starts bqemulator"
            case let .refused(url, body): "\(url) refused: \(body)"
            }
        }
    }
}
