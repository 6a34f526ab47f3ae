import CreditsCore
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

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
    private let deadline: Duration
    /// How long a store call waits for PostgreSQL before it throws `DatabaseDeadlineError` (503).
    public static let deadlineDefault: Duration = .seconds(30)
    /// `reconcile` reads the whole journal: on a large ledger that takes minutes, not seconds.
    static let reconcileDeadline: Duration = .seconds(3_600)
    /// Checking the schema and migrating it at start.
    static let startupDeadline: Duration = .seconds(60)
    /// Whole-batch retries on a deadlock, serialization failure or a key/user created meanwhile.
    static let batchAttemptsMax = 5
    /// Leases tried before a call gives up on a pool that lends only connections already closed.
    static let closedLeaseAttemptsMax = 8
    /// How long PostgreSQL keeps a ledger transaction whose client has gone quiet in the middle of
    /// it. Every commit locks the platform's rows, so a process frozen mid-commit (a paused VM, a
    /// network cut that sends no reset) would hold every instance's writes until the server noticed
    /// the dead connection: by default through the system's TCP keepalive, two hours or more. Past
    /// this limit the server ends that session, and its locks go. The store sends a transaction's
    /// statements one after another, so only a client stalled this long is cut off.
    static let idleInTransactionLimit: Duration = .seconds(15)

    /// Connects, migrates, and starts the client's connection pool.
    ///
    /// - Parameters:
    ///   - url: `postgres://user:password@host:port/database`; an optional
    ///     `?search_path=schema` puts the tables in that schema (which must exist).
    ///   - create: with `false`, a database (or schema) without the ledger's tables is refused
    ///     with `NoLedgerError` before anything is written to it.
    ///   - deadline: how long one call (a group commit, a read) waits for the database before it
    ///     throws `DatabaseDeadlineError`.
    public init(
        url: String, catalog: Catalog = .default, clock: WallClock = .system, sponsorship: SponsorshipRules = .init(),
        lots: LotRules = .init(), logger: Logger? = nil, create: Bool = true, deadline: Duration = deadlineDefault
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
        self.deadline = deadline
        let catalogCopy = catalog
        self.committer = GroupCommitter(
            batchMax: Limits.operationsPerCommitMax, queueLengthMax: Limits.writerQueueLengthMax
        ) { [client, logger] ops in
            await Self.commit(
                ops, client: client, deadline: deadline, catalog: catalogCopy, rules: sponsorship, lots: lots, clock: clock, logger: logger)
        }
        do {
            try await withDeadline(Self.startupDeadline) {
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
        _ ops: [PreparedOperation], client: PostgresClient, deadline: Duration, catalog: Catalog, rules: SponsorshipRules, lots: LotRules,
        clock: WallClock, logger: Logger
    ) async -> [Result<OperationResult, any Error>] {
        let apply = { @Sendable (ops: [PreparedOperation]) async throws -> [Result<OperationResult, any Error>] in
            try await applyWithRetries(
                ops, client: client, deadline: deadline, catalog: catalog, rules: rules, lots: lots, clock: clock, logger: logger)
        }
        do {
            return try await apply(ops)
        } catch {
            // Past the deadline, one by one would wait it out once per operation.
            if ops.count == 1 || error is DatabaseDeadlineError { return ops.map { _ in .failure(error) } }
            logger.warning("batch failed; applying its operations one by one", metadata: ["error": "\(describe(error))"])
        }
        var results: [Result<OperationResult, any Error>] = []
        for op in ops {
            do {
                results.append(try await apply([op])[0])
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    private static func applyWithRetries(
        _ ops: [PreparedOperation], client: PostgresClient, deadline: Duration, catalog: Catalog, rules: SponsorshipRules,
        lots: LotRules, clock: WallClock, logger: Logger
    ) async throws -> [Result<OperationResult, any Error>] {
        var attempt = 1
        while true {
            do {
                return try await pooled(client, deadline: deadline) { conn in
                    try await conn.withTransaction(logger: logger) { conn in
                        try await limitTransaction(conn, statements: deadline, logger: logger)
                        return try await PostgresLedgerWriter.apply(
                            ops, conn: conn, catalog: catalog, sponsorship: rules, lotRules: lots, nowMs: clock.nowMs(), logger: logger)
                    }
                }
            } catch is ConnectionLostError where attempt < batchAttemptsMax {
                // Never answered, so perhaps committed: the keys make a second try replay it.
                attempt += 1
            } catch let error as PSQLError where attempt < batchAttemptsMax && isRetryable(error) {
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * attempt))))
            }
        }
    }

    /// Limits the transaction under way, in one round trip:
    /// - `statement_timeout`, to `statements` (the call's deadline). A call abandoned at its
    ///   deadline leaves its statement running in PostgreSQL (PostgresNIO sends no cancel): one
    ///   waiting on a lock another client holds would go on waiting, holding a pooled connection,
    ///   for as long as that lock is held. The server now cancels it when the caller has been
    ///   answered, the transaction rolls back, and the connection returns to the pool.
    /// - `idle_in_transaction_session_timeout`, to `idle` (`idleInTransactionLimit`).
    ///
    /// Both are `set_config(…, true)`, that is SET LOCAL: they end with the transaction, and work
    /// through a pooler that refuses startup parameters.
    static func limitTransaction(
        _ conn: PostgresConnection, statements: Duration, idle: Duration = idleInTransactionLimit, logger: Logger
    ) async throws {
        try await conn.query("""
            SELECT set_config('statement_timeout', \(milliseconds(statements)), true),
                set_config('idle_in_transaction_session_timeout', \(milliseconds(idle)), true)
            """, logger: logger)
    }

    /// A duration as whole milliseconds, as PostgreSQL's settings take them: at least 1 (0 would
    /// turn a limit off), at most the settings' largest, 2^31 − 1 (24.8 days).
    static func milliseconds(_ limit: Duration) -> String {
        String(min(Int64(Int32.max), max(1, limit.wholeMilliseconds)))
    }

    /// Runs `body` on a pooled connection, within `deadline`.
    ///
    /// PostgresNIO never answers a query sent on a connection that has just closed (see
    /// `withDeadline`). A connection the server closed while it sat idle in the pool can be leased
    /// before the pool hears of it: such a lease is handed back unused and another one taken. One
    /// that closes under `body` ends the call with `ConnectionLostError` a second later.
    static func pooled<T: Sendable>(
        _ client: PostgresClient, deadline: Duration, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let leased = Mutex<PostgresConnection?>(nil)
        return try await withDeadline(deadline, abandonWhen: { leased.withLock { $0?.isClosed ?? false } }) {
            var attempt = 1
            while true {
                do {
                    return try await client.withConnection { conn in
                        if conn.isClosed { throw ClosedConnectionLeased() }
                        leased.withLock { $0 = conn }
                        defer { leased.withLock { $0 = nil } }
                        return try await body(conn)
                    }
                } catch is ClosedConnectionLeased where attempt < closedLeaseAttemptsMax {
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(attempt))  // lets the pool hear of the close
                }
            }
        }
    }

    /// All rows of `query`, read on one pooled connection within the deadline.
    private func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await Self.pooled(client, deadline: deadline) { [logger] conn in
            try await conn.query(query, logger: logger).collect()
        }
    }

    /// All rows of a one-statement write, run in a transaction of its own under `limitTransaction`:
    /// a write waiting on a row another client has locked is cancelled by the server once its
    /// caller has been answered at the deadline, as a ledger commit is. (A read outside a
    /// transaction waits on no row lock, so `rows` needs no such limit.) Three round trips more
    /// than `rows`: for the gas manager's writes and user profiles, not for the ledger's hot path.
    private func written(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await Self.pooled(client, deadline: deadline) { [logger, deadline] conn in
            try await conn.withTransaction(logger: logger) { conn in
                try await Self.limitTransaction(conn, statements: deadline, logger: logger)
                return try await conn.query(query, logger: logger).collect()
            }
        }
    }

    public func ping(within limit: Duration) async throws {
        _ = try await Self.pooled(client, deadline: min(limit, deadline)) { [logger] conn in
            try await conn.query("SELECT 1 FROM platform_accounts LIMIT 1", logger: logger).collect()
        }
    }

    /// Deadlock, serialization failure, or a unique key taken by a concurrent instance.
    static func isRetryable(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001" || state == "23505"
    }

    public func balance(userId: String) async throws -> UserCredits {
        try Identifier.check(userId, field: "userId")
        for row in try await rows("""
            SELECT balance, reserved, total_earned, total_spent, total_purchased FROM user_credits WHERE user_id = \(userId)
            """) {
            let (balance, reserved, earned, spent, purchased) = try row.decode((Int64, Int64, Int64, Int64, Int64).self)
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
            for row in try await rows(PostgresQuery(unsafeSQL: sql, binds: binds)) {
                summary = try row.decode((Int64, Int64, Int64?).self)
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
        let rows = try await rows("""
            SELECT id, kind, debit_account, credit_account, amount, debit_balance_after, credit_balance_after,
                   reference, description, created_at, lots
            FROM credit_transactions WHERE user_id = \(userId) AND id < \(before) ORDER BY id DESC LIMIT \(limit + 1)
            """)
        var entries: [JournalEntry] = []
        for row in rows {
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
        return try await rows("SELECT \(unescaped: UploadQueries.columns) FROM file_uploads WHERE upload_id = \(uploadId)")
            .first.map(Self.uploadRecord)
    }

    public func uploads(status: UploadRecord.Status, limit: Int) async throws -> [UploadRecord] {
        try await rows("""
            SELECT \(unescaped: UploadQueries.columns) FROM file_uploads WHERE status = \(status.rawValue)
            ORDER BY created_at, upload_id LIMIT \(limit)
            """).map(Self.uploadRecord)
    }

    public func transitionUploads(
        _ uploadIds: [String], from: Set<UploadRecord.Status>, to: UploadRecord.Status, batchId: String?, reason: String?,
        inBatch: String?, untouchedSinceMs: Int64?
    ) async throws -> [String] {
        UploadQueries.checkMark(to)
        precondition(from.allSatisfy { !$0.isSettled }, "settled uploads never move")
        if uploadIds.isEmpty || from.isEmpty { return [] }
        let attempts: Int64 = to == .submitted ? 1 : 0
        let moved = try await written("""
            UPDATE file_uploads SET status = \(to.rawValue), batch_id = COALESCE(\(batchId), batch_id),
                failure_reason = CASE WHEN \(to.rawValue)::text = 'failed' THEN COALESCE(\(reason), failure_reason) END,
                attempts = attempts + \(attempts),
                updated_at = \(clock.nowMs())
            WHERE upload_id = ANY(\(uploadIds)::text[]) AND status = ANY(\(from.map(\.rawValue).sorted())::text[])
                AND (\(inBatch)::text IS NULL OR batch_id = \(inBatch))
                AND (\(untouchedSinceMs)::bigint IS NULL OR updated_at <= \(untouchedSinceMs))
            RETURNING upload_id
            """).map { try $0.decode(String.self) }
        let order = Dictionary(uniqueKeysWithValues: uploadIds.enumerated().map { ($1, $0) })
        return moved.sorted { order[$0, default: 0] < order[$1, default: 0] }
    }

    public func setRefundedUploadReason(uploadId: String, expected: String?, reason: String) async throws -> Bool {
        try await !written("""
            UPDATE file_uploads SET failure_reason = \(reason), updated_at = \(clock.nowMs())
            WHERE upload_id = \(uploadId) AND status = 'refunded' AND failure_reason IS NOT DISTINCT FROM \(expected)::text
            RETURNING upload_id
            """).isEmpty
    }

    public func saveGasTransaction(_ tx: GasTransaction) async throws {
        _ = try await written("""
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
            """)
    }

    public func gasTransactions(sinceMs: Int64, limit: Int) async throws -> [GasTransaction] {
        var out: [GasTransaction] = []
        for row in try await rows("""
            SELECT \(unescaped: GasQueries.columns) FROM filecoin_gas_transactions WHERE created_at >= \(sinceMs)
            ORDER BY created_at, id LIMIT \(limit)
            """) {
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
        try await snapshot(queries.map { sql in
            var query = PostgresQuery(unsafeSQL: sql.replacingOccurrences(of: "?", with: "$1"))
            query.binds.append(sinceMs, context: .default)
            return query
        }, deadline: deadline)
    }

    /// The rows of each query, all read in one REPEATABLE READ READ ONLY transaction.
    private func snapshot(_ queries: [PostgresQuery], deadline: Duration) async throws -> [[[SQLValue]]] {
        try await Self.pooled(client, deadline: deadline) { [logger] conn in
            try await conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                try await Self.limitTransaction(conn, statements: deadline, logger: logger)
                var results: [[[SQLValue]]] = []
                for query in queries {
                    results.append(try await conn.query(query, logger: logger).collect().map { try $0.map(Self.value) })
                }
                try await conn.query("COMMIT", logger: logger)
                return results
            } catch {
                _ = try? await conn.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    public func upsertUser(userId: String, walletAddress: String??, signedUpAtMs: Int64?) async throws -> UserProfile {
        try Identifier.check(userId, field: "userId")
        let now = clock.nowMs()
        let setWallet = walletAddress != nil
        let wallet: String? = walletAddress ?? nil
        let rows = try await written("""
            INSERT INTO users (user_id, wallet_address, signed_up_at, created_at, updated_at)
            VALUES (\(userId), \(wallet), \(signedUpAtMs ?? now), \(now), \(now))
            ON CONFLICT (user_id) DO UPDATE SET
                wallet_address = CASE WHEN \(setWallet) THEN EXCLUDED.wallet_address ELSE users.wallet_address END,
                signed_up_at = CASE WHEN \(signedUpAtMs != nil) THEN EXCLUDED.signed_up_at ELSE users.signed_up_at END,
                updated_at = EXCLUDED.updated_at
            RETURNING wallet_address, signed_up_at, sponsored_used
            """)
        for row in rows {
            let (w, signed, used) = try row.decode((String?, Int64, Int64).self)
            return UserProfile(userId: userId, walletAddress: w, signedUpAtMs: signed, sponsoredUploadsUsed: Int(used))
        }
        throw StoreInvariantError(description: "upsert returned no row")
    }

    public func creditLots(userId: String, afterId: Int64, limit: Int) async throws -> [CreditLot] {
        try Identifier.check(userId, field: "userId")
        try LotRows.checkPageLimit(limit)
        var lots: [CreditLot] = []
        for row in try await rows("""
            SELECT \(unescaped: LotRows.columns) FROM credit_lots WHERE user_id = \(userId) AND id > \(afterId)
            ORDER BY id LIMIT \(Int64(limit))
            """) {
            lots.append(try LotRows.decode(try row.map(Self.value)))
        }
        return lots
    }

    public func usersWithExpiredLots(nowMs: Int64, limit: Int) async throws -> [String] {
        try await rows("""
            SELECT DISTINCT user_id FROM credit_lots WHERE remaining > 0 AND expires_at <= \(nowMs) ORDER BY user_id LIMIT \(Int64(limit))
            """).map { try $0.decode(String.self) }
    }

    public func userProfile(userId: String) async throws -> UserProfile? {
        try Identifier.check(userId, field: "userId")
        for row in try await rows("SELECT wallet_address, signed_up_at, sponsored_used FROM users WHERE user_id = \(userId)") {
            let (w, signed, used) = try row.decode((String?, Int64, Int64).self)
            return UserProfile(userId: userId, walletAddress: w, signedUpAtMs: signed, sponsoredUploadsUsed: Int(used))
        }
        return nil
    }

    /// All checks in one REPEATABLE READ transaction, so they see one snapshot.
    public func reconcile() async throws -> ReconcileReport {
        Reconciler.evaluate(try await snapshot(Reconciler.queries.map { PostgresQuery(unsafeSQL: $0) }, deadline: Self.reconcileDeadline))
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
        _ = try await rows(PostgresQuery(unsafeSQL: sql))
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
            if let underlying = psql.underlying { return describe(underlying) }
            return "\(psql.code)"
        }
        return "\(error)"
    }
}

public struct PostgresStoreError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
