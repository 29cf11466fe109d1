import Foundation
import Testing

/// A real HTTP receiver on loopback (Python's http.server in its own process) that records every
/// POST (path, headers, body, the status it answered) and answers the status the test sets.
final class WebhookReceiver {
    struct Request {
        var path: String
        var headers: [String: String]
        var body: [UInt8]
        var status: Int
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
    }

    let port: UInt16
    private let process: Processes.Running
    private let statusFile: URL
    private let requestsFile: URL

    private static let script = #"""
    import base64, http.server, json, sys
    requests_path, status_path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                status = int(open(status_path).read().strip()) if self.path == "/hook" else 200
            except Exception:
                status = 200
            with open(requests_path, "a") as log:
                log.write(json.dumps({"path": self.path, "status": status, "body": base64.b64encode(body).decode(),
                                      "headers": {k.lower(): v for k, v in self.headers.items()}}) + "\n")
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """#

    init(_ harness: Harness) throws {
        port = Processes.freePort()
        statusFile = harness.work.appendingPathComponent("receiver-status")
        requestsFile = harness.work.appendingPathComponent("receiver-requests.jsonl")
        let script = harness.work.appendingPathComponent("receiver.py")
        try Self.script.write(to: script, atomically: true, encoding: .utf8)
        try "200".write(to: statusFile, atomically: true, encoding: .utf8)
        process = try Processes.Running("/usr/bin/env", ["python3", script.path, requestsFile.path, statusFile.path, String(port)],
                                        log: harness.work.appendingPathComponent("receiver.log"))
        let deadline = Date().addingTimeInterval(20)
        while (try? Processes.connect(port: port)).map({ close($0) }) == nil, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
    }

    /// The status every later POST to /hook is answered with.
    func answer(_ status: Int) { try? String(status).write(to: statusFile, atomically: true, encoding: .utf8) }

    func requests(path: String) -> [Request] {
        guard let text = try? String(contentsOf: requestsFile, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], entry["path"] as? String == path,
                  let body = (entry["body"] as? String).flatMap({ Data(base64Encoded: $0) }) else { return nil }
            return Request(path: path, headers: entry["headers"] as? [String: String] ?? [:], body: Array(body), status: entry["status"] as? Int ?? 0)
        }
    }

    /// Waits (bounded) until the requests to `path` satisfy `condition`.
    func waitFor(path: String, timeout: Double, _ condition: ([Request]) -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition(requests(path: path)) {
            guard Date() < deadline else {
                Issue.record("the receiver never got what was awaited on \(path): \(requests(path: path).map { "\($0.status) \(String(decoding: $0.body, as: UTF8.self))" })")
                throw CancellationError()
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    func stop() { process.kill(SIGKILL) }
}
