@testable import CreditsStore
import Foundation
import GRDB
import Testing

/// The writer's hot statements bind and step through SQLite's C API (`SQLiteRaw`): what they
/// bind must read back exactly as GRDB would have written it.
@Suite struct SQLiteRawTests {
    @Test func bindsTextBlobsIntegersAndNullsAsWritten() throws {
        let db = try DatabaseQueue()
        try db.write { db in
            try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b BLOB NOT NULL, c INTEGER)")
            let insert = try db.cachedStatement(sql: "INSERT INTO t (id, a, b, c) VALUES (?, ?, ?, ?)")
            for (id, text, bytes, number) in [(1, "", [UInt8](), Int64?.none), (2, "crédits ✓ 🎵", [0, 255, 7], Int64.min)] as [(Int64, String, [UInt8], Int64?)] {
                try SQLiteRaw(insert, db).run(id, text, bytes, number)
            }
            let empty = try Row.fetchOne(db, sql: "SELECT a, b, c, typeof(a), typeof(b) FROM t WHERE id = 1")!
            #expect(empty[0] as String == "" && (empty[1] as Data).isEmpty && empty.hasNull(atIndex: 2))
            // An empty string and an empty blob are values, not NULL (NOT NULL columns accept them).
            #expect(empty[3] as String == "text" && empty[4] as String == "blob")
            let full = try Row.fetchOne(db, sql: "SELECT a, b, c FROM t WHERE id = 2")!
            #expect(full[0] as String == "crédits ✓ 🎵" && Array(full[1] as Data) == [0, 255, 7] && full[2] as Int64 == Int64.min)

            let select = try db.cachedStatement(sql: "SELECT a, b, c FROM t WHERE id = ?")
            let read = SQLiteRaw(select, db)
            try read.bind(Int64(2))
            #expect(try read.step())
            #expect(read.text(0) == "crédits ✓ 🎵" && read.blob(1) == [0, 255, 7] && read.int(2) == Int64.min)
            #expect(read.value(0) == .text("crédits ✓ 🎵") && read.value(2) == .int(Int64.min))
            #expect(try !read.step())
            // The same cached statement, reset and bound again.
            let again = SQLiteRaw(select, db)
            try again.bind(Int64(1))
            #expect(try again.step())
            #expect(again.isNull(2) && again.value(2) == .null && again.text(0) == "")
            try again.run()
        }
    }

    @Test func errorsAreDatabaseErrorsAndWriteNothing() throws {
        let db = try DatabaseQueue()
        try db.write { db in
            try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL)")
            try db.execute(sql: "INSERT INTO t VALUES (1, 'x')")
            let insert = try db.cachedStatement(sql: "INSERT INTO t (id, a) VALUES (?, ?)")
            #expect {
                try SQLiteRaw(insert, db).run(Int64(1), "y")
            } throws: { error in
                (error as? DatabaseError)?.resultCode == .SQLITE_CONSTRAINT
            }
            #expect(try String.fetchAll(db, sql: "SELECT a FROM t") == ["x"])
        }
    }
}
