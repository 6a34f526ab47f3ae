import CreditsStore
import CreditsTestSupport
import Foundation
import GRDB
import Logging
import PostgresNIO
import Testing
import _ConnectionPoolModule

/// What counts as the database being unavailable (answered 503, retry) and what is a defect
/// (500): errors of each kind, the PostgreSQL ones raised by a real server.
@Suite struct DatabaseOutageTests {
    @Test func sqliteAndPoolErrorsAreClassified() {
        for code: ResultCode in [.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY] {
            #expect(DatabaseOutage.reason(DatabaseError(resultCode: code)) != nil, "\(code)")
        }
        for code: ResultCode in [.SQLITE_CONSTRAINT, .SQLITE_ERROR, .SQLITE_MISUSE, .SQLITE_CORRUPT] {
            #expect(DatabaseOutage.reason(DatabaseError(resultCode: code)) == nil, "\(code)")
        }
        #expect(DatabaseOutage.reason(ConnectionPoolError.connectionCreationCircuitBreakerTripped)?.contains("cannot be reached") == true)
        #expect(DatabaseOutage.reason(ConnectionPoolError.requestCancelled) == nil)
        struct Other: Error {}
        #expect(DatabaseOutage.reason(Other()) == nil)
    }

    /// A server that says it is out of disk, shutting down, in a deadlock or that it cancelled a
    /// statement (statement_timeout: rolled back) is an outage; one that refuses a statement as
    /// wrong (a unique violation, a syntax error) is not. A connection that cannot be made is an
    /// outage. (Connections the server terminates: `ConnectionLossTests`.)
    @Test(.enabled(if: PostgresTestDatabase.url != nil))
    func postgresErrorsAreClassified() async throws {
        let store = try await PostgresStore(url: try await PostgresTestDatabase.freshSchemaURL())
        func raised(_ state: String) async -> (any Error)? {
            do {
                try await store.unsafeExecute("DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '\(state)'; END $$")
                return nil
            } catch { return error }
        }
        for state in ["53100", "57P01", "57014", "08006", "40P01", "40001", "25006"] {
            let error = await raised(state)
            #expect(error.flatMap(DatabaseOutage.reason)?.contains(state) == true, "\(state): \(String(describing: error))")
        }
        for state in ["23505", "42601", "P0001"] {
            let error = await raised(state)
            #expect(error != nil && DatabaseOutage.reason(error!) == nil, "\(state)")
        }
        try await store.close()

        // Inside a transaction (as the store's commits run), the same outage comes wrapped in a
        // PostgresTransactionError, and is still one; a defect so wrapped is still not.
        let connection = try await PostgresTestDatabase.connect()
        for (state, outage) in [("53100", true), ("23505", false)] {
            do {
                _ = try await connection.withTransaction(logger: Logger(label: "test")) { conn in
                    try await conn.query(PostgresQuery(
                        unsafeSQL: "DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '\(state)'; END $$"), logger: Logger(label: "test"))
                }
                Issue.record("\(state) raised nothing")
            } catch {
                #expect(error is PostgresTransactionError)
                #expect((DatabaseOutage.reason(error) != nil) == outage, "\(state): \(String(reflecting: error))")
                // For the log: the server's words, not a dump of the transaction error's fields.
                let text = DatabaseOutage.describe(error)
                #expect(text.contains("raised by the test") && !text.contains("PostgresTransactionError"), "\(text)")
            }
        }
        try await connection.close()

        // A server that is not there.
        do {
            _ = try await PostgresConnection.connect(
                configuration: .init(host: "127.0.0.1", port: 1, username: "postgres", password: nil, database: nil, tls: .disable),
                id: 2, logger: Logger(label: "test"))
            Issue.record("connected to port 1")
        } catch {
            #expect(DatabaseOutage.reason(error) != nil, "\(String(reflecting: error))")
        }
    }
}
