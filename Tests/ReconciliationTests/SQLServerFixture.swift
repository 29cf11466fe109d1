import Foundation
import SQLServerIO
@testable import Warehouse

/// A pysqlbridge server (SQL Server's TDS protocol; `SEGMENTER_TEST_PYSQLBRIDGE` is its
/// command, installed by `scripts/test`) serving the scenario's tables from CSV files this
/// fixture writes, with one SQL login whose password is passed through the environment.
/// pysqlbridge is read-only and lacks `HASHBYTES`, which the tests that use it say in their names.
final class SQLServerFixture {
    static var command: String? { ProcessInfo.processInfo.environment["SEGMENTER_TEST_PYSQLBRIDGE"] }
    static let user = "reader"

    let directory: URL
    let port: Int
    let password = "pw-" + UUID().uuidString.prefix(8)
    private let process = Process()

    init(_ rows: WarehouseRows) throws {
        guard let command = Self.command else { throw FixtureError.noServer }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var daily = "user_id,day,spend,activities,active_seconds\n"
        for row in rows.daily { daily += "\(row.user),\(row.day),\(row.spend),\(row.activities),\(row.seconds)\n" }
        try daily.write(to: directory.appendingPathComponent("daily.csv"), atomically: true, encoding: .utf8)
        // SQL Server's `datetime2` text form, UTC.
        var signups = "user_id,signup_at\n"
        for row in rows.signups { signups += "\(row.user),\(row.at.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: ""))\n" }
        try signups.write(to: directory.appendingPathComponent("signups.csv"), atomically: true, encoding: .utf8)
        try """
            {"logins": [{"user": "\(Self.user)", "password": "${env:SEGMENTER_TDS_PASSWORD}"}],
             "tables": [{"name": "daily", "csv": "daily.csv"}, {"name": "signups", "csv": "signups.csv"}]}
            """.write(to: directory.appendingPathComponent("bridge.json"), atomically: true, encoding: .utf8)

        port = Self.freePort()
        process.executableURL = URL(fileURLWithPath: command)
        process.arguments = ["--config", directory.appendingPathComponent("bridge.json").path, "--host", "127.0.0.1", "--port", String(port)]
        process.environment = ProcessInfo.processInfo.environment.merging(["SEGMENTER_TDS_PASSWORD": password]) { $1 }
        let log = FileHandle(forWritingAtPath: directory.appendingPathComponent("bridge.log").path) ?? {
            FileManager.default.createFile(atPath: directory.appendingPathComponent("bridge.log").path, contents: nil)
            return FileHandle(forWritingAtPath: directory.appendingPathComponent("bridge.log").path)!
        }()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        // Ready once it accepts connections (about 0.3 s).
        var attempts = 0
        while !Self.accepts(port: port) && attempts < 100 {
            attempts += 1
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard attempts < 100 else { throw FixtureError.notListening(try String(contentsOf: directory.appendingPathComponent("bridge.log"), encoding: .utf8)) }
    }

    deinit {
        // pysqlbridge does not stop on SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }

    var queries: WarehouseQueries {
        WarehouseQueries(daily: "SELECT user_id, day, spend, activities, active_seconds FROM daily",
                         signups: "SELECT user_id, signup_at FROM signups")
    }

    /// Its certificate is self-signed: trusted explicitly, as an operator would for such a server.
    func settings(password: String? = nil) -> TDSSettings {
        var settings = TDSSettings(host: "127.0.0.1", port: port, database: nil, user: Self.user, password: password ?? self.password,
                                   encryption: .require, trustServerCertificate: true)
        settings.queryTimeoutSeconds = 60
        return settings
    }

    static func accepts(port: Int) -> Bool {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    enum FixtureError: Error, CustomStringConvertible {
        case noServer
        case notListening(String)
        var description: String {
            switch self {
            case .noServer: "SEGMENTER_TEST_PYSQLBRIDGE is not set: run the tests through scripts/test, which installs pysqlbridge"
            case let .notListening(log): "pysqlbridge did not start listening: \(log)"
            }
        }
    }
}

extension SQLServerFixture {
    /// A port that accepts connections and never answers (a hung server): the socket, which
    /// the caller closes, and its port.
    static func silentListener() -> (socket: Int32, port: Int) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 8)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A free loopback port: bind to port 0 and read back what the kernel chose.
    static func freePort() -> Int {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
