import Foundation

/// HTTP for tests that poll a service across its restarts: curl, one process and one connection
/// per request, with its own time limit. The test process's shared URLSession (libcurl under
/// FoundationNetworking) was seen failing one service's requests for minutes under the suite's
/// load while the service answered others ("couldn't connect" to a listening server; a query
/// Prometheus could answer reported as failed).
enum Curl {
    /// (status, body); status 0 when no answer came.
    static func get(_ url: String, timeout: Int = 20) -> (Int, String) {
        guard let (exit, text) = try? Processes.run("/usr/bin/curl", ["-sS", "-m", String(timeout), "-w", "\n%{http_code}", url], stderr: true),
              exit == 0, let newline = text.lastIndex(of: "\n") else { return (0, "") }
        return (Int(text[text.index(after: newline)...]) ?? 0, String(text[..<newline]))
    }
}
