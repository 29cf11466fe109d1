import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A blocking POST for the delivery thread (never an event loop or the commit thread), with
/// the answer sorted into what a retry can fix and what it cannot.
final class DeliveryHTTP: @unchecked Sendable {
    enum Outcome: Equatable {
        case delivered
        /// A connection failure, a timeout, 408, 429 or 5xx: worth another try.
        case retry(String)
        /// Any other 4xx or 3xx: the receiver refuses this body; trying again sends the same.
        case rejected(String)

        /// Why it failed and whether another try can help; nil when delivered.
        var failure: (reason: String, retryable: Bool)? {
            switch self {
            case .delivered: nil
            case let .retry(reason): (reason, true)
            case let .rejected(reason): (reason, false)
            }
        }
    }

    private let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                    configuration: HTTPClient.Configuration(redirectConfiguration: .disallow))
    private let timeout: TimeAmount

    init(timeoutSeconds: Int64) { timeout = .seconds(timeoutSeconds) }

    deinit { try? client.syncShutdown() }

    func post(_ url: URL, body: [UInt8], headers: [(String, String)]) -> Outcome {
        do {
            var fields = HTTPHeaders(headers)
            fields.replaceOrAdd(name: "Content-Type", value: "application/json")
            fields.replaceOrAdd(name: "User-Agent", value: "segmenter")
            let request = try HTTPClient.Request(url: url.absoluteString, method: .POST, headers: fields, body: .bytes(body))
            let response = try client.execute(request: request, deadline: .now() + timeout).wait()
            let code = response.status.code
            if (200..<300).contains(code) { return .delivered }
            let text = response.body.map { String(buffer: $0) }.map { $0.count > 200 ? String($0.prefix(200)) + "…" : $0 } ?? ""
            let reason = "HTTP \(code)" + (text.isEmpty ? "" : ": \(text)")
            return code == 408 || code == 429 || code >= 500 ? .retry(reason) : .rejected(reason)
        } catch {
            return .retry(String(describing: error))
        }
    }
}
