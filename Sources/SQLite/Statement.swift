import CSQLite

/// A prepared statement; the only owner of its `sqlite3_stmt*`, finalized in `deinit`.
///
/// Hot paths keep statements prepared and `reset()` them between rows: re-preparing costs
/// more than the insert itself.
public final class Statement {
    let handle: OpaquePointer
    /// Keeps the connection open while the statement lives; nil for a statement the connection
    /// caches itself (`SQLiteConnection.cached`), which must not keep its owner alive.
    let connection: SQLiteConnection?
    public let sql: String
    /// The first bind that SQLite refused since the last reset (a parameter index out of range,
    /// a value over its size limit): `step` throws it instead of running with a NULL there.
    private var bindFailure: (index: Int32, code: Int32)?

    init(connection: SQLiteConnection, sql: String, retainingConnection: Bool = true) throws {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(connection.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw connection.error(rc, sql: sql) }
        handle = stmt
        self.connection = retainingConnection ? connection : nil
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Clears bindings and rewinds, ready for the next row.
    @discardableResult
    public func reset() -> Statement {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        bindFailure = nil
        return self
    }

    /// Remembers the first failed bind (binding is on hot paths: no `throws` at each call).
    @inline(__always)
    private func check(_ rc: Int32, _ index: Int32) {
        if rc != SQLITE_OK, bindFailure == nil { bindFailure = (index, rc) }
    }

    public func bind(_ index: Int32, _ value: Int64?) {
        check(value.map { sqlite3_bind_int64(handle, index, $0) } ?? sqlite3_bind_null(handle, index), index)
    }

    public func bind(_ index: Int32, _ value: Double) {
        check(sqlite3_bind_double(handle, index, value), index)
    }

    public func bind(_ index: Int32, _ value: String?) {
        guard let value else { check(sqlite3_bind_null(handle, index), index); return }
        var copy = value
        copy.withUTF8 { buffer in
            check(sqlite3_bind_text(handle, index, buffer.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                                  Int32(buffer.count), segmenter_sqlite_transient()), index)
        }
    }

    public func bind(_ index: Int32, blob: [UInt8]?) {
        guard let blob else { check(sqlite3_bind_null(handle, index), index); return }
        // An empty array has no base address, which SQLite would read as NULL.
        guard !blob.isEmpty else { check(sqlite3_bind_zeroblob(handle, index, 0), index); return }
        blob.withUnsafeBytes { buffer in
            check(sqlite3_bind_blob(handle, index, buffer.baseAddress, Int32(buffer.count), segmenter_sqlite_transient()), index)
        }
    }

    /// Steps once; true while a row is available.
    @discardableResult
    public func step() throws -> Bool {
        if let failure = bindFailure {
            bindFailure = nil
            sqlite3_reset(handle)
            throw SQLiteError(code: failure.code, message: "binding parameter \(failure.index) failed: \(String(cString: sqlite3_errstr(failure.code)))", sql: sql)
        }
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = SQLiteConnection.error(rc, handle: sqlite3_db_handle(handle), sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Steps to completion, for statements that return no rows.
    public func run() throws {
        while try step() {}
        sqlite3_reset(handle)
    }

    public var columnCount: Int32 { sqlite3_column_count(handle) }
    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    public func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }
    public func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }

    public func string(_ column: Int32) -> String? {
        guard let text = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    public func blob(_ column: Int32) -> [UInt8]? {
        guard let pointer = sqlite3_column_blob(handle, column) else { return isNull(column) ? nil : [] }
        let count = Int(sqlite3_column_bytes(handle, column))
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}
