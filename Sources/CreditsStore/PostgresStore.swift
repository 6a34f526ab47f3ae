import CreditsCore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The shared store: several `credits serve` instances on one PostgreSQL database. Each instance
/// group-commits its own operations; the database judges between instances (row locks,
/// conditional updates, unique keys), so no correctness rests on process memory.
public final class PostgresStore: CreditStore {
    public let catalog: Catalog
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger
    private let committer: GroupCommitter<PreparedOperation, OperationResult>
    private let clock: WallClock
    private let lotRules: LotRules
    /// Whole-batch retries on a deadlock, serialization failure or a key/user created meanwhile.
    static let batchAttemptsMax = 5

    /// Connects, migrates, and starts the client's connection pool.
    ///
    /// - Parameters:
    ///   - url: `postgres://user:password@host:port/database`; an optional
    ///     `?search_path=schema` puts the tables in that schema (which must exist).
    ///   - create: with `false`, a database (or schema) without the ledger's tables is refused
    ///     with `NoLedgerError` before anything is written to it.
    public init(
        url: String, catalog: Catalog = .default, clock: WallClock = .system, sponsorship: SponsorshipRules = .init(),
        lots: LotRules = .init(), logger: Logger? = nil, create: Bool = true
    ) async throws {
        let location = try Location(url)
        let logger = logger ?? Logger(label: "credits.postgres")
        do {
            try await Self.probe(location, logger: logger)
        } catch {
            throw PostgresStoreError("cannot connect to the PostgreSQL database at \(Self.redacted(url)): \(Self.describe(error))")
        }
        let client = PostgresClient(configuration: location.clientConfiguration)
        self.client = client
        self.runner = Task { await client.run() }
        self.catalog = catalog
        self.logger = logger
        self.clock = clock
        self.lotRules = lots
        let catalogCopy = catalog
        self.committer = GroupCommitter(
            batchMax: Limits.operationsPerCommitMax, queueLengthMax: Limits.writerQueueLengthMax
        ) { [client, logger] ops in
            await Self.commit(ops, client: client, catalog: catalogCopy, rules: sponsorship, lots: lots, clock: clock, logger: logger)
        }
        do {
            try await withTimeout(seconds: 60) {
                try await PostgresSchema.checkSchema(client, searchPath: location.searchPath, requireLedger: !create, logger: logger)
                try await PostgresSchema.migrate(client, logger: logger)
            }
        } catch let error as NoLedgerError {
            runner.cancel()
            throw NoLedgerError("no ledger at \(Self.redacted(url)): \(error.description)")
        } catch {
            runner.cancel()
            throw PostgresStoreError("cannot use the PostgreSQL database at \(Self.redacted(url)): \(Self.describe(error))")
        }
    }

    public func execute(_ operation: LedgerOperation, idempotencyKey: String?) async throws -> OperationResult {
        try await measured(operation) {
            let prepared = try PreparedOperation(operation, idempotencyKey: idempotencyKey, catalog: catalog)
            return try await committer.submit(prepared)
        }
    }

    private static func commit(
        _ ops: [PreparedOperation], client: PostgresClient, catalog: Catalog, rules: SponsorshipRules, lots: LotRules, clock: WallClock,
        logger: Logger
    ) async -> [Result<OperationResult, any Error>] {
        do {
            return try await applyWithRetries(ops, client: client, catalog: catalog, rules: rules, lots: lots, clock: clock, logger: logger)
        } catch {
            if ops.count == 1 { return [.failure(error)] }
            logger.warning("batch failed; applying its operations one by one", metadata: ["error": "\(describe(error))"])
        }
        var results: [Result<OperationResult, any Error>] = []
        for op in ops {
            do {
                results.append(try await applyWithRetries([op], client: client, catalog: catalog, rules: rules, lots: lots, clock: clock, logger: logger)[0])
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    private static func applyWithRetries(
        _ ops: [PreparedOperation], client: PostgresClient, catalog: Catalog, rules: SponsorshipRules, lots: LotRules, clock: WallClock,
        logger: Logger
    ) async throws -> [Result<OperationResult, any Error>] {
        var attempt = 1
        while true {
            do {
                return try await client.withTransaction(logger: logger) { conn in
                    try await PostgresLedgerWriter.apply(
                        ops, conn: conn, catalog: catalog, sponsorship: rules, lotRules: lots, nowMs: clock.nowMs(), logger: logger)
                }
            } catch let error as PSQLError where attempt < batchAttemptsMax && isRetryable(error) {
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * attempt))))
            }
        }
    }

    /// Deadlock, serialization failure, or a unique key taken by a concurrent instance.
    static func isRetryable(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001" || state == "23505"
    }

    public func balance(userId: String) async throws -> UserCredits {
        try Identifier.check(userId, field: "userId")
        let rows = try await client.query("""
            SELECT balance, reserved, total_earned, total_spent, total_purchased FROM user_credits WHERE user_id = \(userId)
            """, logger: logger)
        for try await (balance, reserved, earned, spent, purchased) in rows.decode((Int64, Int64, Int64, Int64, Int64).self) {
            let now = clock.nowMs()
            var summary: (Int64, Int64, Int64?) = (0, 0, nil)
            var sql = LotRows.expirySummary
            for i in 1...5 { sql = sql.replacingOccurrences(of: "?", with: "$\(i)", options: [], range: sql.range(of: "?")) }
            var binds = PostgresBindings()
            binds.append(now)
            binds.append(now)
            binds.append(now + lotRules.expiringSoonMs)
            binds.append(now)
            binds.append(userId)
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                .decode((Int64, Int64, Int64?).self) {
                summary = row
            }
            return LotRows.credits(userId: userId, balance: balance, reserved: reserved, totalEarned: earned, totalSpent: spent,
                                   totalPurchased: purchased, expiredUnswept: summary.0, expiringSoon: summary.1,
                                   nextExpiryAtMs: summary.2)
        }
        return UserCredits(userId: userId)
    }

    public func transactions(userId: String, limit: Int, cursor: String?) async throws -> TransactionPage {
        try Identifier.check(userId, field: "userId")
        try Paging.checkLimit(limit)
        let before = try Paging.parseCursor(cursor) ?? Int64.max
        let account = Account.user(userId).id
        let rows = try await client.query("""
            SELECT id, kind, debit_account, credit_account, amount, debit_balance_after, credit_balance_after,
                   reference, description, created_at, lots
            FROM credit_transactions WHERE user_id = \(userId) AND id < \(before) ORDER BY id DESC LIMIT \(limit + 1)
            """, logger: logger)
        var entries: [JournalEntry] = []
        for try await row in rows {
            let (id, kind, debit, credit, amount, debitAfter, creditAfter, reference, description, createdAt, lots) =
                try row.decode((Int64, String, String, String, Int64, Int64, Int64, String, String, Int64, String).self)
            let credited = credit == account
            entries.append(JournalEntry(
                id: "txn_\(id)", type: kind, credits: credited ? amount : -amount,
                balanceAfter: credited ? creditAfter : debitAfter, counterparty: credited ? debit : credit,
                reference: reference, description: description, createdAtMs: createdAt, lots: LotUsage(text: lots) ?? LotUsage()))
        }
        let more = entries.count > limit
        let page = Array(entries.prefix(limit))
        return TransactionPage(data: page, nextCursor: more ? page.last?.id : nil)
    }

    public func upload(uploadId: String) async throws -> UploadRecord? {
        try Identifier.check(uploadId, field: "uploadId")
        let rows = try await client.query(
            "SELECT \(unescaped: UploadQueries.columns) FROM file_uploads WHERE upload_id = \(uploadId)", logger: logger)
        for try await row in rows { return try Self.uploadRecord(row) }
        return nil
    }

    public func uploads(status: UploadRecord.Status, limit: Int) async throws -> [UploadRecord] {
        let rows = try await client.query("""
            SELECT \(unescaped: UploadQueries.columns) FROM file_uploads WHERE status = \(status.rawValue)
            ORDER BY created_at, upload_id LIMIT \(limit)
            """, logger: logger)
        var out: [UploadRecord] = []
        for try await row in rows { out.append(try Self.uploadRecord(row)) }
        return out
    }

    public func transitionUploads(
        _ uploadIds: [String], from: Set<UploadRecord.Status>, to: UploadRecord.Status, batchId: String?, reason: String?,
        inBatch: String?, untouchedSinceMs: Int64?
    ) async throws -> [String] {
        UploadQueries.checkMark(to)
        precondition(from.allSatisfy { !$0.isSettled }, "settled uploads never move")
        if uploadIds.isEmpty || from.isEmpty { return [] }
        let attempts: Int64 = to == .submitted ? 1 : 0
        var moved: [String] = []
        for try await id in try await client.query("""
            UPDATE file_uploads SET status = \(to.rawValue), batch_id = COALESCE(\(batchId), batch_id),
                failure_reason = CASE WHEN \(to.rawValue)::text = 'failed' THEN COALESCE(\(reason), failure_reason) END,
                attempts = attempts + \(attempts),
                updated_at = \(clock.nowMs())
            WHERE upload_id = ANY(\(uploadIds)::text[]) AND status = ANY(\(from.map(\.rawValue).sorted())::text[])
                AND (\(inBatch)::text IS NULL OR batch_id = \(inBatch))
                AND (\(untouchedSinceMs)::bigint IS NULL OR updated_at <= \(untouchedSinceMs))
            RETURNING upload_id
            """, logger: logger).decode(String.self) {
            moved.append(id)
        }
        let order = Dictionary(uniqueKeysWithValues: uploadIds.enumerated().map { ($1, $0) })
        return moved.sorted { order[$0, default: 0] < order[$1, default: 0] }
    }

    public func setRefundedUploadReason(uploadId: String, expected: String?, reason: String) async throws -> Bool {
        var set = false
        for try await _ in try await client.query("""
            UPDATE file_uploads SET failure_reason = \(reason), updated_at = \(clock.nowMs())
            WHERE upload_id = \(uploadId) AND status = 'refunded' AND failure_reason IS NOT DISTINCT FROM \(expected)::text
            RETURNING upload_id
            """, logger: logger).decode(String.self) {
            set = true
        }
        return set
    }

    public func saveGasTransaction(_ tx: GasTransaction) async throws {
        try await client.query("""
            INSERT INTO filecoin_gas_transactions (id, batch_id, message_cid, upload_ids, items, gas_limit, gas_used,
                base_fee, premium, fee_cap, total_cost, individual_cost, immediate_cost, status, attempt, failure_reason,
                created_at, updated_at)
            VALUES (\(tx.id), \(tx.batchId), \(tx.messageCid), \(tx.uploadIds.joined(separator: ",")), \(Int64(tx.uploadIds.count)),
                \(tx.gasLimit), \(tx.gasUsed), \(String(tx.baseFee)), \(String(tx.premium)), \(String(tx.feeCap)),
                \(String(tx.totalCost)), \(String(tx.individualCost)), \(String(tx.immediateCost)), \(tx.status.rawValue),
                \(Int64(tx.attempt)), \(tx.failureReason), \(tx.createdAtMs), \(tx.updatedAtMs))
            ON CONFLICT (id) DO UPDATE SET message_cid = EXCLUDED.message_cid, gas_used = EXCLUDED.gas_used,
                base_fee = EXCLUDED.base_fee, premium = EXCLUDED.premium, fee_cap = EXCLUDED.fee_cap,
                total_cost = EXCLUDED.total_cost, individual_cost = EXCLUDED.individual_cost,
                immediate_cost = EXCLUDED.immediate_cost, status = EXCLUDED.status, attempt = EXCLUDED.attempt,
                failure_reason = EXCLUDED.failure_reason, updated_at = EXCLUDED.updated_at
            """, logger: logger)
    }

    public func gasTransactions(sinceMs: Int64, limit: Int) async throws -> [GasTransaction] {
        var out: [GasTransaction] = []
        for try await row in try await client.query("""
            SELECT \(unescaped: GasQueries.columns) FROM filecoin_gas_transactions WHERE created_at >= \(sinceMs)
            ORDER BY created_at, id LIMIT \(limit)
            """, logger: logger) {
            let (id, batch, cid, uploads, limitGas, used, base, premium, cap, total, individual) =
                try row.decode((String, String, String, String, Int64, Int64, String, String, String, String, String).self)
            let randomAccess = row.makeRandomAccess()
            let immediate = try randomAccess[11].decode(String.self)
            let status = try randomAccess[12].decode(String.self)
            let attempt = try randomAccess[13].decode(Int64.self)
            let reason = try randomAccess[14].decode(String?.self)
            let created = try randomAccess[15].decode(Int64.self)
            let updated = try randomAccess[16].decode(Int64.self)
            out.append(GasQueries.record(
                id: id, batchId: batch, messageCid: cid, uploadIds: uploads, gasLimit: limitGas, gasUsed: used,
                baseFee: base, premium: premium, feeCap: cap, totalCost: total, individualCost: individual,
                immediateCost: immediate, status: status, attempt: attempt, failureReason: reason, createdAt: created,
                updatedAt: updated))
        }
        return out
    }

    private static func uploadRecord(_ row: PostgresRow) throws -> UploadRecord {
        let (id, user, type, count, features, size, priority, status, reserved, charged, batch, reason, attempts, created, updated) =
            try row.decode((String, String, String, Int64, String, Int64, String, String, Int64, Int64, String?, String?, Int64, Int64, Int64).self)
        return UploadQueries.record(
            uploadId: id, userId: user, fileType: type, fileCount: count, features: features, sizeBytes: size,
            priority: priority, status: status, creditsReserved: reserved, creditsCharged: charged, batchId: batch,
            failureReason: reason, attempts: attempts, createdAt: created, updatedAt: updated,
            sponsored: try row.makeRandomAccess()[15].decode(Int64.self) != 0)
    }

    public func dailyTotals(sinceMs: Int64) async throws -> [DailyTotals] {
        PlatformQueries.daily(try await snapshot(PlatformQueries.dailyQueries, sinceMs: sinceMs))
    }

    public func platformTotals(sinceMs: Int64) async throws -> (PlatformTotals, purchasePricesCents: [Int64]) {
        let (totals, prices) = PlatformQueries.totals(try await snapshot(PlatformQueries.queries, sinceMs: sinceMs))
        return (totals, prices)
    }

    /// Runs `queries` (each with `?` = sinceMs) in one REPEATABLE READ snapshot.
    private func snapshot(_ queries: [String], sinceMs: Int64) async throws -> [[[SQLValue]]] {
        try await client.withConnection { conn in
            try await conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: self.logger)
            do {
                var results: [[[SQLValue]]] = []
                for sql in queries {
                    var query = PostgresQuery(unsafeSQL: sql.replacingOccurrences(of: "?", with: "$1"))
                    try query.binds.append(sinceMs, context: .default)
                    var rows: [[SQLValue]] = []
                    for try await row in try await conn.query(query, logger: self.logger) {
                        rows.append(try row.map(Self.value))
                    }
                    results.append(rows)
                }
                try await conn.query("COMMIT", logger: self.logger)
                return results
            } catch {
                _ = try? await conn.query("ROLLBACK", logger: self.logger)
                throw error
            }
        }
    }

    public func upsertUser(userId: String, walletAddress: String??, signedUpAtMs: Int64?) async throws -> UserProfile {
        try Identifier.check(userId, field: "userId")
        let now = clock.nowMs()
        let setWallet = walletAddress != nil
        let wallet: String? = walletAddress ?? nil
        let rows = try await client.query("""
            INSERT INTO users (user_id, wallet_address, signed_up_at, created_at, updated_at)
            VALUES (\(userId), \(wallet), \(signedUpAtMs ?? now), \(now), \(now))
            ON CONFLICT (user_id) DO UPDATE SET
                wallet_address = CASE WHEN \(setWallet) THEN EXCLUDED.wallet_address ELSE users.wallet_address END,
                signed_up_at = CASE WHEN \(signedUpAtMs != nil) THEN EXCLUDED.signed_up_at ELSE users.signed_up_at END,
                updated_at = EXCLUDED.updated_at
            RETURNING wallet_address, signed_up_at, sponsored_used
            """, logger: logger)
        for try await (w, signed, used) in rows.decode((String?, Int64, Int64).self) {
            return UserProfile(userId: userId, walletAddress: w, signedUpAtMs: signed, sponsoredUploadsUsed: Int(used))
        }
        throw StoreInvariantError(description: "upsert returned no row")
    }

    public func creditLots(userId: String, afterId: Int64, limit: Int) async throws -> [CreditLot] {
        try Identifier.check(userId, field: "userId")
        try LotRows.checkPageLimit(limit)
        var lots: [CreditLot] = []
        for try await row in try await client.query("""
            SELECT \(unescaped: LotRows.columns) FROM credit_lots WHERE user_id = \(userId) AND id > \(afterId)
            ORDER BY id LIMIT \(Int64(limit))
            """, logger: logger) {
            lots.append(try LotRows.decode(try row.map(Self.value)))
        }
        return lots
    }

    public func usersWithExpiredLots(nowMs: Int64, limit: Int) async throws -> [String] {
        var users: [String] = []
        for try await user in try await client.query("""
            SELECT DISTINCT user_id FROM credit_lots WHERE remaining > 0 AND expires_at <= \(nowMs) ORDER BY user_id LIMIT \(Int64(limit))
            """, logger: logger).decode(String.self) {
            users.append(user)
        }
        return users
    }

    public func userProfile(userId: String) async throws -> UserProfile? {
        try Identifier.check(userId, field: "userId")
        let rows = try await client.query(
            "SELECT wallet_address, signed_up_at, sponsored_used FROM users WHERE user_id = \(userId)", logger: logger)
        for try await (w, signed, used) in rows.decode((String?, Int64, Int64).self) {
            return UserProfile(userId: userId, walletAddress: w, signedUpAtMs: signed, sponsoredUploadsUsed: Int(used))
        }
        return nil
    }

    /// All checks in one REPEATABLE READ transaction, so they see one snapshot.
    public func reconcile() async throws -> ReconcileReport {
        try await client.withConnection { conn in
            try await conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: self.logger)
            do {
                var results: [[[SQLValue]]] = []
                for sql in Reconciler.queries {
                    var rows: [[SQLValue]] = []
                    for try await row in try await conn.query(PostgresQuery(unsafeSQL: sql), logger: self.logger) {
                        rows.append(try row.map(Self.value))
                    }
                    results.append(rows)
                }
                try await conn.query("COMMIT", logger: self.logger)
                return Reconciler.evaluate(results)
            } catch {
                _ = try? await conn.query("ROLLBACK", logger: self.logger)
                throw error
            }
        }
    }

    static func value(_ cell: PostgresCell) throws -> SQLValue {
        if cell.bytes == nil { return .null }
        switch cell.dataType {
        case .int8: return .int(try cell.decode(Int64.self))
        case .int4: return .int(Int64(try cell.decode(Int32.self)))
        case .int2: return .int(Int64(try cell.decode(Int16.self)))
        default: return .text(try cell.decode(String.self))
        }
    }

    /// Runs raw SQL (tests and tools use it to look behind the ledger's back).
    public func unsafeExecute(_ sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }

    public func close() async throws {
        await committer.close()
        runner.cancel()
        _ = await runner.value
    }

    /// The parts of a `postgres://user:password@host:port/database?search_path=schema` URL.
    struct Location {
        var host: String
        var port: Int
        var user: String
        var password: String?
        var database: String?
        var searchPath: String?

        init(_ url: String) throws {
            guard let parts = URLComponents(string: url), parts.scheme == "postgres" || parts.scheme == "postgresql",
                  let host = parts.host, !host.isEmpty
            else {
                throw PostgresStoreError("the database URL must look like postgres://user:password@host:port/database")
            }
            self.host = host
            port = parts.port ?? 5432
            user = parts.user ?? "postgres"
            password = parts.password
            let db = String(parts.path.drop(while: { $0 == "/" }))
            database = db.isEmpty ? nil : db
            for item in parts.queryItems ?? [] {
                switch item.name {
                case "search_path":
                    guard let schema = item.value, Identifier.isValid(schema) else {
                        throw PostgresStoreError("search_path must be a plain schema name")
                    }
                    searchPath = schema
                case "sslmode" where item.value == "disable":
                    break
                default:
                    throw PostgresStoreError("unsupported database URL parameter '\(item.name)' (TLS is not supported yet)")
                }
            }
        }

        var clientConfiguration: PostgresClient.Configuration {
            var config = PostgresClient.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: .disable)
            config.options.connectTimeout = .seconds(5)
            config.options.maximumConnections = 32
            if let searchPath { config.options.additionalStartupParameters.append(("search_path", searchPath)) }
            return config
        }

        var connectionConfiguration: PostgresConnection.Configuration {
            var config = PostgresConnection.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: .disable)
            config.options.connectTimeout = .seconds(5)
            if let searchPath { config.options.additionalStartupParameters.append(("search_path", searchPath)) }
            return config
        }
    }

    /// One direct connection first: the pool retries quietly, this one says what is wrong
    /// (refused, unknown host, bad password, no such database).
    static func probe(_ location: Location, logger: Logger) async throws {
        let conn = try await PostgresConnection.connect(configuration: location.connectionConfiguration, id: 0, logger: logger)
        try await conn.close()
    }

    /// The URL with its password replaced, for messages; a file path unchanged.
    public static func redacted(_ url: String) -> String {
        guard url.hasPrefix("postgres") else { return url }
        guard var parts = URLComponents(string: url) else { return "<unparsable URL>" }
        if parts.password != nil { parts.password = "***" }
        return parts.string ?? "<unparsable URL>"
    }

    /// What a failed transaction wraps (what BEGIN, its body or COMMIT threw); any other error as is.
    static func cause(_ error: any Error) -> any Error {
        if let transaction = error as? PostgresTransactionError,
           let inner = transaction.closureError ?? transaction.beginError ?? transaction.commitError {
            return cause(inner)
        }
        return error
    }

    static func describe(_ error: any Error) -> String {
        let error = cause(error)
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] { return message }
            if let underlying = psql.underlying { return "\(underlying)" }
            return "\(psql.code)"
        }
        return "\(error)"
    }
}

public struct PostgresStoreError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

struct TimeoutError: Error, CustomStringConvertible {
    var description: String { "timed out" }
}

/// Runs `body`, throwing `TimeoutError` if it takes longer than `seconds`.
func withTimeout<T: Sendable>(seconds: Int, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimeoutError()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
