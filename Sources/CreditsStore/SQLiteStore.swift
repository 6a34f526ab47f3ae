import CreditsCore
import Foundation
import GRDB

/// The embedded store: one SQLite file in WAL mode, `synchronous=FULL`, one group-commit writer.
public final class SQLiteStore: CreditStore {
    public let catalog: Catalog
    public let path: String
    private let pool: DatabasePool
    private let clock: WallClock
    private let lotRules: LotRules
    private let committer: GroupCommitter<PreparedOperation, OperationResult>

    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// - Parameter create: with `false`, a missing file, or a SQLite file that is not a ledger, is
    ///   refused with `NoLedgerError` before anything is written to it (for tools that read or
    ///   repair a ledger, where a mistyped path must not become a new, empty one).
    public init(path: String, catalog: Catalog = .default, clock: WallClock = .system, sponsorship: SponsorshipRules = .init(),
                lots: LotRules = .init(), create: Bool = true) throws {
        if !create { try Self.checkIsLedger(path) }
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.label = "credits"
        let pool = try DatabasePool(path: path, configuration: config)
        // GRDB's DatabasePool sets synchronous=NORMAL on its writer when it enables WAL. NORMAL
        // may lose the last commits on power loss; an acknowledged credit must not be lost.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Index pages the writer touches stay in memory (64 MiB instead of SQLite's 2 MiB).
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        try SQLiteSchema.migrator.migrate(pool)
        self.pool = pool
        self.path = path
        self.catalog = catalog
        self.clock = clock
        self.lotRules = lots
        let catalogCopy = catalog
        self.committer = GroupCommitter(
            batchMax: Limits.operationsPerCommitMax, queueLengthMax: Limits.writerQueueLengthMax
        ) { [pool, clock] ops in
            await Self.commit(ops, pool: pool, catalog: catalogCopy, rules: sponsorship, lots: lots, clock: clock)
        }
    }

    /// The writer connection's `PRAGMA synchronous` (2 = FULL) and `journal_mode`.
    public func durabilitySettings() throws -> (synchronous: Int, journalMode: String) {
        try pool.writeWithoutTransaction { db in
            (try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1,
             try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "")
        }
    }

    /// Throws `NoLedgerError` unless `path` is a SQLite file with the ledger's migrations table,
    /// read through a read-only connection, so that a file that is not a ledger is left as it was.
    static func checkIsLedger(_ path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw NoLedgerError("no ledger at \(path): the file does not exist")
        }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        let isLedger: Bool
        do {
            let probe = try DatabaseQueue(path: path, configuration: config)
            isLedger = try probe.read { db in try db.tableExists("grdb_migrations") && db.tableExists("credit_transactions") }
            try probe.close()
        } catch {
            throw NoLedgerError("no ledger at \(path): \(error)")
        }
        guard isLedger else { throw NoLedgerError("no ledger at \(path): the file is a SQLite database without the ledger's tables") }
    }

    public func execute(_ operation: LedgerOperation, idempotencyKey: String?) async throws -> OperationResult {
        try await measured(operation) {
            let prepared = try PreparedOperation(operation, idempotencyKey: idempotencyKey, catalog: catalog)
            return try await committer.submit(prepared)
        }
    }

    /// One transaction for the whole batch. If it fails unexpectedly (an I/O error, a constraint
    /// that should not trip), it is rolled back and each operation is retried in a transaction of
    /// its own, so one bad operation cannot fail the others. Nothing returns before COMMIT.
    private static func commit(
        _ ops: [PreparedOperation], pool: DatabasePool, catalog: Catalog, rules: SponsorshipRules, lots: LotRules, clock: WallClock
    ) async -> [Result<OperationResult, any Error>] {
        do {
            return try await pool.writeWithoutTransaction { db in
                try applyInTransaction(ops, db: db, catalog: catalog, rules: rules, lots: lots, nowMs: clock.nowMs())
            }
        } catch {
            if ops.count == 1 { return [.failure(error)] }
        }
        var results: [Result<OperationResult, any Error>] = []
        for op in ops {
            do {
                let one = try await pool.writeWithoutTransaction { db in
                    try applyInTransaction([op], db: db, catalog: catalog, rules: rules, lots: lots, nowMs: clock.nowMs())
                }
                results.append(one[0])
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    private static func applyInTransaction(
        _ ops: [PreparedOperation], db: Database, catalog: Catalog, rules: SponsorshipRules, lots: LotRules, nowMs: Int64
    ) throws -> [Result<OperationResult, any Error>] {
        var results: [Result<OperationResult, any Error>] = []
        try db.inTransaction(.immediate) {
            results = try SQLiteLedgerWriter.apply(ops, db: db, catalog: catalog, sponsorship: rules, lotRules: lots, nowMs: nowMs)
            return .commit
        }
        return results
    }

    public func balance(userId: String) async throws -> UserCredits {
        try Identifier.check(userId, field: "userId")
        let now = clock.nowMs()
        let soon = now + lotRules.expiringSoonMs
        return try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT balance, reserved, total_earned, total_spent, total_purchased
                FROM user_credits WHERE user_id = ?
                """, arguments: [userId])
            else { return UserCredits(userId: userId) }
            let lots = try Row.fetchOne(db, sql: LotRows.expirySummary, arguments: [now, now, soon, now, userId])
            return LotRows.credits(userId: userId, balance: row[0], reserved: row[1], totalEarned: row[2], totalSpent: row[3],
                                   totalPurchased: row[4], expiredUnswept: lots?[0] ?? 0, expiringSoon: lots?[1] ?? 0,
                                   nextExpiryAtMs: lots?[2])
        }
    }

    public func transactions(userId: String, limit: Int, cursor: String?) async throws -> TransactionPage {
        try Identifier.check(userId, field: "userId")
        try Paging.checkLimit(limit)
        let before = try Paging.parseCursor(cursor) ?? Int64.max
        let account = Account.user(userId).id
        return try await pool.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT id, kind, debit_account, credit_account, amount, debit_balance_after,
                       credit_balance_after, reference, description, created_at, lots
                FROM credit_transactions WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?
                """, arguments: [userId, before, limit + 1])
            let entries = rows.prefix(limit).map { row -> JournalEntry in
                let id: Int64 = row[0]
                let credited = (row[3] as String) == account
                let amount: Int64 = row[4]
                return JournalEntry(
                    id: "txn_\(id)", type: row[1], credits: credited ? amount : -amount,
                    balanceAfter: credited ? row[6] : row[5], counterparty: credited ? row[2] : row[3],
                    reference: row[7], description: row[8], createdAtMs: row[9], lots: LotUsage(text: row[10]) ?? LotUsage())
            }
            return TransactionPage(data: entries, nextCursor: rows.count > limit ? entries.last?.id : nil)
        }
    }

    public func upload(uploadId: String) async throws -> UploadRecord? {
        try Identifier.check(uploadId, field: "uploadId")
        return try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(UploadQueries.columns) FROM file_uploads WHERE upload_id = ?",
                             arguments: [uploadId]).map(Self.uploadRecord)
        }
    }

    public func uploads(status: UploadRecord.Status, limit: Int) async throws -> [UploadRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT \(UploadQueries.columns) FROM file_uploads WHERE status = ? ORDER BY created_at, upload_id LIMIT ?
                """, arguments: [status.rawValue, limit]).map(Self.uploadRecord)
        }
    }

    public func transitionUploads(
        _ uploadIds: [String], from: Set<UploadRecord.Status>, to: UploadRecord.Status, batchId: String?, reason: String?,
        inBatch: String?, untouchedSinceMs: Int64?
    ) async throws -> [String] {
        UploadQueries.checkMark(to)
        precondition(from.allSatisfy { !$0.isSettled }, "settled uploads never move")
        if uploadIds.isEmpty || from.isEmpty { return [] }
        let now = clock.nowMs()
        let allowed = from.map(\.rawValue).sorted()
        return try await pool.write { db in
            var moved: [String] = []
            let statement = try db.cachedStatement(sql: """
                UPDATE file_uploads SET status = ?, batch_id = COALESCE(?, batch_id),
                    failure_reason = CASE WHEN ? = 'failed' THEN COALESCE(?, failure_reason) END, attempts = attempts + ?,
                    updated_at = ?
                WHERE upload_id = ? AND status IN (SELECT value FROM json_each(?)) AND (? IS NULL OR batch_id = ?)
                    AND (? IS NULL OR updated_at <= ?)
                """)
            let allowedJSON = "[" + allowed.map { "\"\($0)\"" }.joined(separator: ",") + "]"
            for id in uploadIds {
                try statement.execute(arguments: [to.rawValue, batchId, to.rawValue, reason, to == .submitted ? 1 : 0, now, id, allowedJSON, inBatch, inBatch,
                                                  untouchedSinceMs, untouchedSinceMs])
                if db.changesCount > 0 { moved.append(id) }
            }
            return moved
        }
    }

    public func setRefundedUploadReason(uploadId: String, expected: String?, reason: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: """
                UPDATE file_uploads SET failure_reason = ?, updated_at = ?
                WHERE upload_id = ? AND status = 'refunded' AND failure_reason IS ?
                """, arguments: [reason, clock.nowMs(), uploadId, expected])
            return db.changesCount > 0
        }
    }

    public func saveGasTransaction(_ tx: GasTransaction) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO filecoin_gas_transactions (id, batch_id, message_cid, upload_ids, items, gas_limit,
                    gas_used, base_fee, premium, fee_cap, total_cost, individual_cost, immediate_cost, status, attempt,
                    failure_reason, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [
                    tx.id, tx.batchId, tx.messageCid, tx.uploadIds.joined(separator: ","), tx.uploadIds.count, tx.gasLimit,
                    tx.gasUsed, String(tx.baseFee), String(tx.premium), String(tx.feeCap), String(tx.totalCost),
                    String(tx.individualCost), String(tx.immediateCost), tx.status.rawValue, tx.attempt, tx.failureReason,
                    tx.createdAtMs, tx.updatedAtMs,
                ])
        }
    }

    public func gasTransactions(sinceMs: Int64, limit: Int) async throws -> [GasTransaction] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT \(GasQueries.columns) FROM filecoin_gas_transactions WHERE created_at >= ? ORDER BY created_at, id LIMIT ?
                """, arguments: [sinceMs, limit]).map { row in
                GasQueries.record(
                    id: row[0], batchId: row[1], messageCid: row[2], uploadIds: row[3], gasLimit: row[4], gasUsed: row[5],
                    baseFee: row[6], premium: row[7], feeCap: row[8], totalCost: row[9], individualCost: row[10],
                    immediateCost: row[11], status: row[12], attempt: row[13], failureReason: row[14], createdAt: row[15],
                    updatedAt: row[16])
            }
        }
    }

    private static func uploadRecord(_ row: Row) -> UploadRecord {
        UploadQueries.record(
            uploadId: row[0], userId: row[1], fileType: row[2], fileCount: row[3], features: row[4], sizeBytes: row[5],
            priority: row[6], status: row[7], creditsReserved: row[8], creditsCharged: row[9], batchId: row[10],
            failureReason: row[11], attempts: row[12], createdAt: row[13], updatedAt: row[14], sponsored: (row[15] as Int64) != 0)
    }

    public func dailyTotals(sinceMs: Int64) async throws -> [DailyTotals] {
        try await pool.read { db in PlatformQueries.daily(try Self.fetch(db, PlatformQueries.dailyQueries, sinceMs)) }
    }

    private static func fetch(_ db: Database, _ queries: [String], _ sinceMs: Int64) throws -> [[[SQLValue]]] {
        try queries.map { sql in
            try Row.fetchAll(db, sql: sql, arguments: [sinceMs]).map(values)
        }
    }

    static func values(_ row: Row) -> [SQLValue] {
        Array(row.databaseValues).map { value -> SQLValue in
            switch value.storage {
            case .int64(let v): .int(v)
            case .string(let s): .text(s)
            default: .null
            }
        }
    }

    public func platformTotals(sinceMs: Int64) async throws -> (PlatformTotals, purchasePricesCents: [Int64]) {
        try await pool.read { db in
            let (totals, prices) = PlatformQueries.totals(try Self.fetch(db, PlatformQueries.queries, sinceMs))
            return (totals, prices)
        }
    }

    public func upsertUser(userId: String, walletAddress: String??, signedUpAtMs: Int64?) async throws -> UserProfile {
        try Identifier.check(userId, field: "userId")
        let now = clock.nowMs()
        let setWallet = walletAddress != nil
        let wallet: String? = walletAddress ?? nil
        return try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO users (user_id, wallet_address, signed_up_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (user_id) DO UPDATE SET
                    wallet_address = CASE WHEN ? THEN excluded.wallet_address ELSE wallet_address END,
                    signed_up_at = CASE WHEN ? THEN excluded.signed_up_at ELSE signed_up_at END,
                    updated_at = excluded.updated_at
                """, arguments: [userId, wallet, signedUpAtMs ?? now, now, now, setWallet, signedUpAtMs != nil])
            let row = try Row.fetchOne(db, sql: "SELECT wallet_address, signed_up_at, sponsored_used FROM users WHERE user_id = ?",
                                       arguments: [userId])!
            return UserProfile(userId: userId, walletAddress: row[0], signedUpAtMs: row[1], sponsoredUploadsUsed: row[2])
        }
    }

    public func creditLots(userId: String, afterId: Int64, limit: Int) async throws -> [CreditLot] {
        try Identifier.check(userId, field: "userId")
        try LotRows.checkPageLimit(limit)
        return try await pool.read { db in
            try Row.fetchAll(db, sql: LotRows.page, arguments: [userId, afterId, limit]).map { try LotRows.decode(Self.values($0)) }
        }
    }

    public func usersWithExpiredLots(nowMs: Int64, limit: Int) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: LotRows.expiredUsers, arguments: [nowMs, limit])
        }
    }

    public func userProfile(userId: String) async throws -> UserProfile? {
        try Identifier.check(userId, field: "userId")
        return try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT wallet_address, signed_up_at, sponsored_used FROM users WHERE user_id = ?",
                             arguments: [userId]).map {
                UserProfile(userId: userId, walletAddress: $0[0], signedUpAtMs: $0[1], sponsoredUploadsUsed: $0[2])
            }
        }
    }

    public func reconcile() async throws -> ReconcileReport {
        try await pool.read { db in try Reconciler.run(sqlite: db) }
    }

    public func ping(within limit: Duration) async throws {
        _ = try await withDeadline(limit) { [pool] in
            try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1 FROM platform_accounts LIMIT 1") }
        }
    }

    public func close() async throws {
        await committer.close()
        try pool.close()
    }
}
