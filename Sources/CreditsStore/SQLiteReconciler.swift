import CreditsCore
import GRDB

extension Reconciler {
    /// Runs the shared checks inside one SQLite read transaction.
    static func run(sqlite db: Database) throws -> ReconcileReport {
        let results = try queries.map { sql in
            try Row.fetchAll(db, sql: sql).map { row in
                Array(row.databaseValues).map { value -> SQLValue in
                    switch value.storage {
                    case .int64(let v): .int(v)
                    case .string(let s): .text(s)
                    default: .null
                    }
                }
            }
        }
        return evaluate(results)
    }
}
