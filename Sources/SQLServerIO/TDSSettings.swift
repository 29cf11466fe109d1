/// Where a SQL Server is and how to log in. The password comes from the environment through
/// `${VAR}` in the config and is never logged or written to a file.
public struct TDSSettings: Sendable {
    /// TLS for the whole session. The login packet is always encrypted by the protocol itself.
    public enum Encryption: String, Sendable, CaseIterable {
        /// TLS or no connection.
        case require
        /// TLS when the server offers it.
        case prefer
        /// Only the login is encrypted.
        case off
    }

    public var host: String
    public var port: Int
    public var database: String?
    public var user: String
    public var password: String?
    public var encryption: Encryption
    /// Accept any certificate (a self-signed one, say). Off by default: the certificate must
    /// chain to `caFile`, or to the system's roots, and name `host`.
    public var trustServerCertificate: Bool
    /// PEM bundle to verify the server against instead of the system's roots.
    public var caFile: String?
    public var loginTimeoutSeconds = 10
    /// A query that takes longer fails the run (and is retried by the scheduler).
    public var queryTimeoutSeconds = 600

    public init(host: String, port: Int = 1433, database: String?, user: String, password: String?,
                encryption: Encryption = .require, trustServerCertificate: Bool = false, caFile: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
        self.encryption = encryption
        self.trustServerCertificate = trustServerCertificate
        self.caFile = caFile
    }

    /// TLS is on and the certificate must check out.
    var verifiesCertificate: Bool { encryption != .off && !trustServerCertificate }

    /// The FreeTDS configuration section db-lib reads for this server: everything but the
    /// credentials, which go into the login record.
    func freeTDSSection(named name: String) -> String {
        var lines = ["[\(name)]", "host = \(host)", "port = \(port)", "tds version = 7.4",
                     "encryption = \(encryption == .prefer ? "request" : encryption.rawValue)"]
        if verifiesCertificate {
            lines.append("ca file = \(caFile ?? "system")")
            lines.append("check certificate hostname = yes")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A value bound to a named parameter of `sp_executesql`.
public enum TDSParameter: Sendable, Equatable {
    case text(String)
    case integer(Int64)

    /// As `validate` prints it.
    public var display: String {
        switch self {
        case let .text(text): "N'\(text)'"
        case let .integer(number): String(number)
        }
    }

    /// How it is declared in `sp_executesql`'s parameter list.
    public var declaredType: String {
        switch self {
        case .text: "NVARCHAR(4000)"
        case .integer: "BIGINT"
        }
    }
}

/// A failure talking to SQL Server, with the cause named.
public struct TDSError: Error, CustomStringConvertible, Sendable {
    public enum Cause: String, Sendable {
        case loginFailed = "login failed"
        case unreachable = "server unreachable"
        case timeout = "timed out"
        case tls = "TLS failed"
        case unknownObject = "unknown object"
        case query = "query failed"
        case client = "client error"
    }

    public let cause: Cause
    /// SQL Server's message number (18456, 208, …) or db-lib's error number.
    public let number: Int?
    public let message: String

    public init(cause: Cause, number: Int?, message: String) {
        self.cause = cause
        self.number = number
        self.message = message
    }

    public var description: String {
        "\(cause.rawValue): \(message)" + (number.map { " (error \($0))" } ?? "")
    }
}
