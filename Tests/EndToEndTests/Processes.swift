import Foundation

/// Runs the real `segmenter` binary (and kcat) as separate processes, as a user would.
enum Processes {
    /// The binary under test: `SEGMENTER_BIN` (set by scripts/test) or this checkout's debug build.
    static var segmenterPath: String {
        if let path = ProcessInfo.processInfo.environment["SEGMENTER_BIN"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/segmenter").path
    }

    /// A started process whose stdout and stderr go to a log file.
    final class Running: @unchecked Sendable {
        let process = Process()
        let logURL: URL

        init(_ executable: String, _ arguments: [String], log: URL, environment: [String: String] = [:]) throws {
            logURL = log
            if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        var output: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

        func kill(_ signal: Int32) {
            if process.isRunning { Foundation.kill(process.processIdentifier, signal) }
        }

        /// Waits for exit up to `seconds`; returns the status, or nil if still running.
        @discardableResult
        func wait(seconds: Double) -> Int32? {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            return process.isRunning ? nil : process.terminationStatus
        }

        deinit { kill(SIGKILL) }
    }

    /// Runs to completion and returns (status, stdout), or stdout and stderr together with `stderr`.
    static func run(_ executable: String, _ arguments: [String], timeout: Double = 120, stderr: Bool = false,
                    environment: [String: String] = [:]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("out-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        let handle = try FileHandle(forWritingTo: out)
        process.standardOutput = handle
        process.standardError = stderr ? handle : FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// A TCP connection to a loopback port, as a raw descriptor (to send a request byte by byte).
    static func connect(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let status = withLoopback(port: port) { Glibc.connect(fd, $0, $1) }
        guard status == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        return fd
    }

    /// Calls `body` with 127.0.0.1:`port` as a socket address and its length.
    private static func withLoopback(port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Ports handed out so far in this process: each test gets its own.
    nonisolated(unsafe) private static var nextPort = UInt16(20_000 + Int(getpid()) % 6_000)
    private static let portLock = NSLock()

    /// A loopback port nobody listens on right now, below the kernel's ephemeral range
    /// (32768–60999): a port from that range (what binding port 0 returns) can be taken by any
    /// outgoing connection before the server that was meant to get it binds it — seen under load
    /// as Prometheus scraping another test's instance.
    static func freePort() -> UInt16 {
        portLock.lock()
        defer { portLock.unlock() }
        while true {
            let port = nextPort
            nextPort = nextPort >= 32_000 ? 20_000 : nextPort + 1
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            let bound = withLoopback(port: port) { bind(fd, $0, $1) }
            close(fd)
            if bound == 0 { return port }
        }
    }
}
