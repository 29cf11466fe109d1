import CSQLite
import CSQLiteWALBuffer

/// An SQLite error with its result code, SQLite's message and the SQL that failed.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String
    public let sql: String?

    public init(code: Int32, message: String, sql: String?) {
        self.code = code
        self.message = message
        self.sql = sql
    }

    public var description: String {
        var text = "SQLite error \(code) (\(String(cString: sqlite3_errstr(code)))): \(message)"
        if code & 0xFF == SQLITE_FULL { text += " — the disk holding the state directory is full" }
        if let sql { text += " [SQL: \(sql)]" }
        return text
    }
}

/// One SQLite connection; the only owner of its `sqlite3*`, closed in `deinit`.
///
/// Not thread-safe: each thread that touches a database opens its own connection (WAL lets
/// readers such as `inspect` run beside the ingest writer).
public final class SQLiteConnection: @unchecked Sendable {
    /// How many `transaction` calls are open on this connection (nested ones join the outermost).
    private var transactionDepth = 0
    let handle: OpaquePointer
    public let path: String

    /// Process-wide set-up, once, before the first connection.
    private static let configured: Bool = { segmenter_sqlite_disable_memstatus() == SQLITE_OK }()
    /// Writers go through the WAL-buffering VFS (see `CSQLiteWALBuffer`), or SQLite's own if it
    /// could not be registered.
    private static let writerVFS: String? = {
        segmenter_wal_buffer_register() == SQLITE_OK ? SEGMENTER_WAL_BUFFER_VFS : nil
    }()

    public init(path: String, readOnly: Bool = false) throws {
        _ = Self.configured
        var db: OpaquePointer?
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, readOnly ? nil : Self.writerVFS)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: "\(message) (\(path))", sql: nil)
        }
        handle = db
        self.path = path
        sqlite3_busy_timeout(db, 10_000)
        sqlite3_extended_result_codes(db, 1)
    }

    /// Statements prepared once per connection (`cached`), by their SQL.
    private var statementCache: [String: Statement] = [:]

    deinit {
        statementCache = [:]  // finalized before the close
        sqlite3_close_v2(handle)
    }

    /// Defines a deterministic SQL function of one text argument, e.g. a hash SQLite lacks.
    /// The connection owns `body` until it closes.
    public func defineFunction(_ name: String, _ body: @escaping @Sendable (String) -> String) throws {
        try defineFunction(name, utf8: { body(String(decoding: $0, as: UTF8.self)) })
    }

    /// The same, handed the argument's UTF-8 bytes in place: no string is made per row, for a
    /// function a scan calls on every row.
    public func defineFunction(_ name: String, utf8 body: @escaping @Sendable (UnsafeRawBufferPointer) -> String) throws {
        let box = Unmanaged.passRetained(TextFunction(body)).toOpaque()
        let rc = sqlite3_create_function_v2(handle, name, 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, box, { context, _, arguments in
            let function = Unmanaged<TextFunction>.fromOpaque(sqlite3_user_data(context)!).takeUnretainedValue()
            guard let argument = arguments?[0], let text = sqlite3_value_text(argument) else { return sqlite3_result_null(context) }
            let bytes = UnsafeRawBufferPointer(start: text, count: Int(sqlite3_value_bytes(argument)))
            sqlite3_result_text(context, function.body(bytes), -1, segmenter_sqlite_transient())
        }, nil, nil, { box in Unmanaged<TextFunction>.fromOpaque(box!).release() })
        guard rc == SQLITE_OK else { throw error(rc, sql: nil) }
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, sql: sql) }
    }

    public func prepare(_ sql: String) throws -> Statement { try Statement(connection: self, sql: sql) }

    /// The statement for `sql`, prepared on first use and kept for the connection's life, reset
    /// and with no bindings: paths that run a statement a few times per call, thousands of times
    /// (the KPI leader's steps in a catch-up), skip SQLite's parser. For statements run to
    /// completion before the next use of the same SQL (writes, single-row reads); a loop over
    /// rows that calls back into code using the same SQL must `prepare` its own.
    public func cached(_ sql: String) throws -> Statement {
        if let statement = statementCache[sql] { return statement.reset() }
        let statement = try Statement(connection: self, sql: sql, retainingConnection: false)
        statementCache[sql] = statement
        return statement
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`; rolls back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T { try inTransaction("BEGIN IMMEDIATE", body) }

    /// Runs `body` inside `BEGIN DEFERRED … COMMIT`: its reads see one snapshot of the database
    /// (WAL), and a read-only connection can run it.
    public func readTransaction<T>(_ body: () throws -> T) throws -> T { try inTransaction("BEGIN DEFERRED", body) }

    /// Inside a transaction already, `body` joins it (one COMMIT for many small writes, as the
    /// KPI leader's steps do); a failure then rolls back the outermost.
    private func inTransaction<T>(_ begin: String, _ body: () throws -> T) throws -> T {
        if transactionDepth > 0 { return try body() }
        try execute(begin)
        transactionDepth += 1
        defer { transactionDepth -= 1 }
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
    /// The rowid of the latest successful INSERT on this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    func error(_ rc: Int32, sql: String?) -> SQLiteError { Self.error(rc, handle: handle, sql: sql) }

    static func error(_ rc: Int32, handle: OpaquePointer?, sql: String?) -> SQLiteError {
        SQLiteError(code: rc, message: handle.map { String(cString: sqlite3_errmsg($0)) } ?? "no connection", sql: sql)
    }

    /// `PRAGMA user_version`, which numbers the applied migrations.
    public var userVersion: Int {
        get throws {
            let statement = try prepare("PRAGMA user_version")
            _ = try statement.step()
            return Int(statement.int64(0))
        }
    }
}

/// A Swift closure kept alive for SQLite's C callback.
private final class TextFunction {
    let body: @Sendable (UnsafeRawBufferPointer) -> String
    init(_ body: @escaping @Sendable (UnsafeRawBufferPointer) -> String) { self.body = body }
}
