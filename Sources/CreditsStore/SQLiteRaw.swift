import Foundation
import GRDB
import GRDBSQLite

/// A statement GRDB prepared and cached, bound and stepped through SQLite's C API. On the
/// writer's hottest statements (one or more per operation) GRDB's argument arrays and cursors
/// cost more than SQLite's own work; these few skip them. The statement runs inside GRDB's
/// transaction like any other, and an error becomes GRDB's `DatabaseError`.
struct SQLiteRaw {
    private let handle: OpaquePointer
    private let db: Database

    /// Resets the statement and clears its bindings.
    init(_ statement: Statement, _ db: Database) {
        handle = statement.sqliteStatement
        self.db = db
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    fileprivate func bind(_ index: Int32, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    fileprivate func bind(_ index: Int32, _ value: Int64?) throws {
        if let value { try bind(index, value) } else { try check(sqlite3_bind_null(handle, index)) }
    }

    fileprivate func bind(_ index: Int32, _ value: String) throws {
        var value = value
        try value.withUTF8 { utf8 in
            // A NULL pointer would bind NULL: an empty string gets a literal's.
            guard let base = utf8.baseAddress, !utf8.isEmpty else { return try check(sqlite3_bind_text(handle, index, "", 0, Self.transient)) }
            try check(sqlite3_bind_text(handle, index, UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self), Int32(utf8.count), Self.transient))
        }
    }

    fileprivate func bind(_ index: Int32, _ value: [UInt8]) throws {
        try value.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return try check(sqlite3_bind_zeroblob(handle, index, 0)) }
            try check(sqlite3_bind_blob(handle, index, base, Int32(bytes.count), Self.transient))
        }
    }

    /// Steps once: true with a row to read, false when done.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw error(rc)
    }

    /// Runs a statement that returns no row.
    func run() throws {
        while try step() {}
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let bytes = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    private func check(_ rc: Int32) throws {
        if rc != SQLITE_OK { throw error(rc) }
    }

    private func error(_ rc: Int32) -> DatabaseError {
        let message = sqlite3_errmsg(db.sqliteConnection).map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: rc), message: message, sql: sqlite3_sql(handle).map { String(cString: $0) })
    }
}

/// A value `SQLiteRaw` binds: integers (or NULL), text, blobs.
protocol SQLiteBindable {
    func bind(to statement: SQLiteRaw, at index: Int32) throws
}

extension Int64: SQLiteBindable {
    func bind(to statement: SQLiteRaw, at index: Int32) throws { try statement.bind(index, self) }
}

extension Optional: SQLiteBindable where Wrapped == Int64 {
    func bind(to statement: SQLiteRaw, at index: Int32) throws { try statement.bind(index, self) }
}

extension String: SQLiteBindable {
    func bind(to statement: SQLiteRaw, at index: Int32) throws { try statement.bind(index, self) }
}

extension Array: SQLiteBindable where Element == UInt8 {
    func bind(to statement: SQLiteRaw, at index: Int32) throws { try statement.bind(index, self) }
}

extension SQLiteRaw {
    /// Binds the values to parameters 1, 2, … in order (no array is built).
    @inline(__always)
    func bind<each Value: SQLiteBindable>(_ values: repeat each Value) throws {
        var index: Int32 = 0
        for value in repeat each values {
            index += 1
            try value.bind(to: self, at: index)
        }
    }

    /// Binds the values and runs a statement that returns no row.
    @inline(__always)
    func run<each Value: SQLiteBindable>(_ values: repeat each Value) throws {
        try bind(repeat each values)
        try run()
    }

    /// A column as the stores' neutral value (integers, text, NULL).
    func value(_ column: Int32) -> SQLValue {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_INTEGER: .int(int(column))
        case SQLITE_NULL: .null
        default: .text(text(column))
        }
    }
}
