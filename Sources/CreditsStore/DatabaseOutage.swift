import GRDB
import PostgresNIO
import _ConnectionPoolModule

/// Errors that say the database cannot be reached or cannot take the operation right now (down,
/// restarting, locked past the busy timeout, out of disk or connections), as opposed to a defect.
/// The API answers them 503 `UNAVAILABLE`, so that clients retry: every ledger operation is keyed,
/// so one sent again applies once, whether or not the first try committed.
public enum DatabaseOutage {
    /// A short reason for the log when `error` is an outage; nil for any other error.
    public static func reason(_ error: any Error) -> String? {
        let error = PostgresStore.cause(error)
        if error is DatabaseDeadlineError || error is ConnectionLostError || error is ClosedConnectionLeased { return "\(error)" }
        if let pool = error as? ConnectionPoolError {
            switch pool {
            case .connectionCreationCircuitBreakerTripped: return "PostgreSQL cannot be reached (the connection pool stopped trying for now)"
            case .poolShutdown: return "the PostgreSQL connection pool is shut down"
            default: return nil
            }
        }
        if let psql = error as? PSQLError {
            switch psql.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
                return "the connection to PostgreSQL failed" + (psql.underlying.map { ": \(PostgresStore.describe($0))" } ?? "")
            case .server:
                // Classes 08 (connection), 53 (insufficient resources: disk, memory, connections),
                // 57P (shutting down, starting up), a statement cancelled (its statement_timeout, or
                // an operator's pg_cancel_backend: rolled back), a read-only standby after a
                // failover, and the serialization failures and deadlocks the store retries before
                // giving up.
                let state = psql.serverInfo?[.sqlState] ?? ""
                let transient = state.hasPrefix("08") || state.hasPrefix("53") || state.hasPrefix("57P")
                    || ["57014", "25006", "40001", "40P01"].contains(state)
                return transient ? "PostgreSQL: \(psql.serverInfo?[.message] ?? state) (\(state))" : nil
            default:
                return nil
            }
        }
        if let sqlite = error as? DatabaseError {
            switch sqlite.resultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_NOMEM:
                return "SQLite: \(sqlite.message ?? "\(sqlite.resultCode)")"
            default:
                return nil
            }
        }
        return nil
    }
}

extension DatabaseOutage {
    /// A short text for a log line: an outage's reason, or the error itself without the driver's
    /// wrapping (a PostgreSQL transaction error prints as a dump of its fields).
    public static func describe(_ error: any Error) -> String {
        reason(error) ?? PostgresStore.describe(error)
    }
}
