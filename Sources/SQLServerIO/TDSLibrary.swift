import CFreeTDS
import Foundation

/// db-lib's process-wide state: its initialisation, the error and message handlers, the
/// timeouts and the configuration file it reads are global. Every db-lib call goes through
/// `serialized`, which also collects what the handlers reported during that call.
enum TDSLibrary {
    private static let lock = NSLock()
    /// What the handlers reported during the current serialized call (guarded by `lock`).
    nonisolated(unsafe) private static var reported: [Diagnostic] = []
    private static let initialized: Bool = {
        guard dbinit() == SUCCEED else { return false }
        _ = dberrhandle { _, severity, number, osError, text, osText in
            TDSLibrary.reported.append(Diagnostic(fromClient: true, number: Int(number), severity: Int(severity),
                                                  text: text.map { String(cString: $0) } ?? "",
                                                  osText: osError > 0 ? osText.map { String(cString: $0) } : nil))
            return INT_CANCEL
        }
        _ = dbmsghandle { _, number, _, severity, text, _, _, _ in
            // Severity 10 and below is information ("changed database context to …").
            if severity > 10 {
                TDSLibrary.reported.append(Diagnostic(fromClient: false, number: Int(number), severity: Int(severity),
                                                      text: text.map { String(cString: $0) } ?? "", osText: nil))
            }
            return 0
        }
        return true
    }()

    struct Diagnostic {
        let fromClient: Bool
        let number: Int
        let severity: Int
        let text: String
        let osText: String?
    }

    /// Runs `body` alone, with db-lib's timeouts set; an error thrown inside carries what the
    /// handlers reported.
    static func serialized<T>(loginTimeout: Int, queryTimeout: Int, _ body: () throws -> T) throws -> T {
        lock.lock()
        defer {
            reported.removeAll()
            lock.unlock()
        }
        guard initialized else { throw TDSError(cause: .client, number: nil, message: "FreeTDS db-lib did not initialise") }
        reported.removeAll()
        dbsetlogintime(Int32(loginTimeout))
        dbsettime(Int32(queryTimeout))
        return try body()
    }

    /// The error the handlers reported in this serialized call, or `fallback`. The server's own
    /// message wins over the client's summary of it.
    static func failure(_ fallback: String) -> TDSError {
        let server = reported.first { !$0.fromClient }
        if let server {
            let cause: TDSError.Cause = switch server.number {
            case 18456: .loginFailed
            case 208: .unknownObject
            default: .query
            }
            return TDSError(cause: cause, number: server.number, message: server.text)
        }
        guard let client = reported.first(where: \.fromClient) else { return TDSError(cause: .client, number: nil, message: fallback) }
        let all = reported.filter(\.fromClient).map { [$0.text, $0.osText].compactMap { $0 }.joined(separator: ": ") }.joined(separator: "; ")
        let cause: TDSError.Cause = switch client.number {
        case Int(SYBETIME): .timeout
        case Int(SYBECONN), Int(SYBESOCK): .unreachable
        default: all.range(of: "tls|ssl|certificate|handshake", options: [.regularExpression, .caseInsensitive]) != nil ? .tls : .query
        }
        return TDSError(cause: cause, number: client.number, message: all)
    }
}
