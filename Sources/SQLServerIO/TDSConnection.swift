import CFreeTDS
import Foundation

/// One SQL Server session through FreeTDS's db-lib: the only owner of its `DBPROCESS*`, closed
/// in `deinit`. Queries run as `sp_executesql` with every value a typed, bound parameter.
/// Calls block; run them off the cooperative pool.
public final class TDSConnection: @unchecked Sendable {
    private let process: OpaquePointer
    private let settings: TDSSettings

    public init(settings: TDSSettings) throws {
        self.settings = settings
        process = try TDSLibrary.serialized(loginTimeout: settings.loginTimeoutSeconds, queryTimeout: settings.queryTimeoutSeconds) {
            do { return try Self.open(settings) } catch let failure as TDSError where failure.number == Int(SYBEFCON) && settings.verifiesCertificate {
                // db-lib says only "connection failed" when the certificate is refused: try
                // once without checking it, to tell the operator which it was.
                var unverified = settings
                unverified.trustServerCertificate = true
                guard let probe = try? Self.open(unverified) else { throw failure }
                dbclose(probe)
                throw TDSError(cause: .tls, number: failure.number, message: "the server's certificate could not be verified against "
                               + (settings.caFile ?? "the system's roots") + " for \(settings.host) (give its root as ca_file:, or set trust_server_certificate: true)")
            }
        }
    }

    deinit { dbclose(process) }

    /// Logs in. The server's address and TLS settings reach db-lib as a FreeTDS configuration
    /// file of our own (readable only by us, removed right after), since db-lib 1.3 takes
    /// them from nowhere else; the credentials go only into the login record.
    private static func open(_ settings: TDSSettings) throws -> OpaquePointer {
        guard let login = dblogin() else { throw TDSError(cause: .client, number: nil, message: "cannot allocate a login record") }
        defer { dbloginfree(login) }
        _ = segmenter_tds_set_user(login, settings.user)
        _ = segmenter_tds_set_password(login, settings.password ?? "")
        _ = segmenter_tds_set_app(login, "segmenter")
        _ = segmenter_tds_set_charset(login, "UTF-8")
        if let database = settings.database { _ = segmenter_tds_set_database(login, database) }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("segmenter-tds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("freetds.conf")
        let section = "segmenter"
        try ("[global]\n" + settings.freeTDSSection(named: section)).write(to: file, atomically: false, encoding: .utf8)
        let previous = ProcessInfo.processInfo.environment["FREETDSCONF"]
        setenv("FREETDSCONF", file.path, 1)
        defer { if let previous { setenv("FREETDSCONF", previous, 1) } else { unsetenv("FREETDSCONF") } }

        guard let process = segmenter_tds_open(login, section) else {
            throw TDSLibrary.failure("cannot connect to \(settings.host):\(settings.port)")
        }
        return process
    }

    /// Runs `statement` through `sp_executesql` with `parameters` (`@name` → value) and hands
    /// each row's columns, as text (NULL as nil), to `row`.
    public func query(_ statement: String, parameters: [(name: String, value: TDSParameter)],
                      row: ([String?]) throws -> Void) throws {
        try TDSLibrary.serialized(loginTimeout: settings.loginTimeoutSeconds, queryTimeout: settings.queryTimeoutSeconds) {
            let declarations = parameters.map { "\($0.name) \($0.value.declaredType)" }.joined(separator: ", ")
            // db-lib keeps pointers to the values until the call is sent: own them until then.
            var buffers: [UnsafeMutableRawPointer] = []
            defer { buffers.forEach { $0.deallocate() } }
            func bind(_ name: String, _ value: TDSParameter) throws {
                let rc: RETCODE
                switch value {
                case let .text(text):
                    let bytes = Array(text.utf8)
                    let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
                    buffer.copyMemory(from: bytes, byteCount: bytes.count)
                    buffers.append(buffer)
                    // A VARCHAR of at most 4000 bytes goes out as NVARCHAR, which sp_executesql wants.
                    guard bytes.count <= 4000 else {
                        throw TDSError(cause: .client, number: nil, message: "\(name) is \(bytes.count) bytes; sp_executesql takes at most 4000 here")
                    }
                    rc = dbrpcparam(process, name, 0, Int32(SYBVARCHAR), -1, DBINT(bytes.count), buffer.assumingMemoryBound(to: BYTE.self))
                case let .integer(number):
                    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
                    buffer.storeBytes(of: number, as: Int64.self)
                    buffers.append(buffer)
                    rc = dbrpcparam(process, name, 0, Int32(SYBINT8), -1, -1, buffer.assumingMemoryBound(to: BYTE.self))
                }
                guard rc == SUCCEED else { throw TDSLibrary.failure("cannot bind \(name)") }
            }
            guard dbrpcinit(process, "sp_executesql", 0) == SUCCEED else { throw TDSLibrary.failure("cannot start a call") }
            try bind("@stmt", .text(statement))
            if !parameters.isEmpty { try bind("@params", .text(declarations)) }
            for parameter in parameters { try bind(parameter.name, parameter.value) }
            guard dbrpcsend(process) == SUCCEED, dbsqlok(process) == SUCCEED else {
                dbcancel(process)
                throw TDSLibrary.failure("the call failed")
            }
            try readResults(row)
        }
    }

    private func readResults(_ row: ([String?]) throws -> Void) throws {
        while true {
            let status = dbresults(process)
            if status == NO_MORE_RESULTS { return }
            guard status == SUCCEED else {
                dbcancel(process)
                throw TDSLibrary.failure("reading results failed")
            }
            let columns = dbnumcols(process)
            while true {
                let next = dbnextrow(process)
                if next == NO_MORE_ROWS { break }
                guard next == REG_ROW else {
                    dbcancel(process)
                    throw TDSLibrary.failure("reading a row failed")
                }
                var values: [String?] = []
                values.reserveCapacity(Int(columns))
                for column in 1...max(columns, 1) where columns > 0 { values.append(text(of: column)) }
                do { try row(values) } catch {
                    dbcancel(process)
                    throw error
                }
            }
        }
    }

    /// db-lib reports character columns with these types (the X… ones are TDS 7's wide forms).
    private static let characterTypes: Set<Int32> = Set([SYBCHAR, SYBVARCHAR, SYBTEXT, SYBNVARCHAR, SYBNTEXT].map { Int32($0) } + [175, 167, 239, 231])

    /// A column of the current row as text: character data as sent (UTF-8), anything else
    /// through db-lib's own conversion (integers exactly, decimals with their scale).
    private func text(of column: Int32) -> String? {
        guard let data = dbdata(process, column) else { return nil }
        let length = Int(dbdatlen(process, column))
        let type = dbcoltype(process, column)
        if Self.characterTypes.contains(type) {
            return String(decoding: UnsafeBufferPointer(start: data, count: length), as: UTF8.self)
        }
        var buffer = [UInt8](repeating: 0, count: 128)
        let written = buffer.withUnsafeMutableBufferPointer {
            dbconvert(process, type, data, DBINT(length), Int32(SYBCHAR), $0.baseAddress, DBINT($0.count))
        }
        guard written >= 0 else { return nil }
        return String(decoding: buffer.prefix(Int(written)), as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }
}
