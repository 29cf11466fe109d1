import Foundation
import Testing
import SQLite

/// A bind SQLite refuses fails the statement with its cause, rather than running it with a NULL
/// in that parameter's place (issue 27: bind results were ignored).
@Suite struct StatementTests {
    @Test func aBindToAParameterTheStatementDoesNotHaveFailsItsStep() throws {
        let db = try SQLiteConnection(path: ":memory:")
        try db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        let insert = try db.prepare("INSERT INTO t (a, b) VALUES (?, ?)")
        insert.bind(1, Int64(7))
        insert.bind(3, "no third parameter")
        #expect {
            try insert.run()
        } throws: { error in
            let failure = error as? SQLiteError
            return failure?.code == 25 && failure?.message.contains("binding parameter 3 failed") == true
        }
        // Nothing was written, and after a reset the statement works again.
        let count = try db.prepare("SELECT count(*) FROM t")
        _ = try count.step()
        #expect(count.int64(0) == 0)
        insert.reset().bind(1, Int64(8))
        insert.bind(2, "two")
        try insert.run()
        let rows = try db.prepare("SELECT a, b FROM t")
        #expect(try rows.step() && rows.int64(0) == 8 && rows.string(1) == "two")
    }
}
