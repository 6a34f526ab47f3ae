import CreditsCore
import Foundation
import GRDB

/// The store found its own data inconsistent mid-transaction: the transaction is rolled back and
/// the operation fails with 500; `credits reconcile` will say more.
struct StoreInvariantError: Error, CustomStringConvertible {
    var description: String
}

/// Applies a batch of operations inside one write transaction of the SQLite store: reads the keys,
/// balances and platform balances the batch needs, lets `BatchPlanner` decide, writes its plan.
enum SQLiteLedgerWriter {
    static func apply(
        _ ops: [PreparedOperation], db: Database, catalog: Catalog, sponsorship rules: SponsorshipRules, lotRules: LotRules,
        nowMs: Int64
    ) throws -> [Result<OperationResult, any Error>] {
        var existing: [String: KeyRecord] = [:]
        var balances: [String: Int64] = [:]
        var reserved: [String: Int64] = [:]
        var uploads: [String: UploadHold] = [:]
        let keyLookup = try db.cachedStatement(sql: "SELECT request_hash, outcome FROM idempotency_keys WHERE key = ?")
        // A user's balances and open lots in one statement (one row per lot, or one with NULLs).
        let balanceLookup = try db.cachedStatement(sql: """
            SELECT u.balance, u.reserved, l.id, l.user_id, l.category, l.source, l.granted, l.remaining, l.expires_at, l.created_at
            FROM user_credits u LEFT JOIN credit_lots l ON l.user_id = u.user_id AND l.remaining > 0
            WHERE u.user_id = ?
            """)
        let uploadLookup = try db.cachedStatement(sql: "SELECT user_id, credits_reserved, status, sponsored, lots, batch_id FROM file_uploads WHERE upload_id = ?")
        var lots: [CreditLot] = []
        let profileLookup = try db.cachedStatement(sql: "SELECT wallet_address, signed_up_at, sponsored_used FROM users WHERE user_id = ?")
        let paymentLookup = try db.cachedStatement(sql: """
            SELECT \(PaymentRows.columns) FROM credit_purchases WHERE payment_method = ? AND payment_id = ?
            """)
        var profiles: [String: UserProfile] = [:]
        var payments: [PaymentKey: PaymentState] = [:]
        for op in ops {
            for key in op.keys where existing[key] == nil {
                let lookup = SQLiteRaw(keyLookup, db)
                try lookup.bind(key)
                if try lookup.step() {
                    existing[key] = KeyRecord(requestHash: lookup.blob(0), outcome: try OutcomeCoding.decode(lookup.text(1)))
                    try lookup.run()
                }
            }
            let user = op.operation.userId
            var users = user.isEmpty ? [] : [user]
            if let key = op.operation.paymentKey, payments[key] == nil,
               let row = try Row.fetchOne(paymentLookup, arguments: [key.paymentMethod.rawValue, key.paymentId]) {
                payments[key] = try PaymentRows.decode(SQLiteStore.values(row))
            }
            // A provider event moves the credits of the payment's buyer, whoever the event names.
            if let owner = op.operation.paymentKey.flatMap({ payments[$0]?.userId }) { users.append(owner) }
            for user in users where balances[user] == nil {
                let lookup = SQLiteRaw(balanceLookup, db)
                try lookup.bind(user)
                while try lookup.step() {
                    balances[user] = lookup.int(0)
                    reserved[user] = lookup.int(1)
                    if !lookup.isNull(2) { lots.append(try LotRows.decode((2..<10).map { lookup.value(Int32($0)) })) }
                }
            }
            if let uploadId = op.operation.settledUploadId, uploads[uploadId] == nil,
               let row = try Row.fetchOne(uploadLookup, arguments: [uploadId]) {
                uploads[uploadId] = UploadHold(userId: row[0], credits: row[1], status: UploadRecord.Status(rawValue: row[2]) ?? .confirmed,
                                               batchId: row[5], sponsored: (row[3] as Int64) != 0, lots: LotUsage(text: row[4]) ?? LotUsage())
            }
            if op.operation.mayBeSponsored, profiles[user] == nil, let row = try Row.fetchOne(profileLookup, arguments: [user]) {
                profiles[user] = UserProfile(userId: user, walletAddress: row[0], signedUpAtMs: row[1], sponsoredUploadsUsed: row[2])
            }
        }
        var platform: [PlatformAccount: Int64] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT name, balance FROM platform_accounts")) {
            if let account = PlatformAccount(rawValue: row[0]) { platform[account] = row[1] }
        }
        // Plain MAX(id) on the rowid is one b-tree step; wrapped in COALESCE it becomes a scan.
        var nextTxn = try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(id) FROM credit_transactions")) ?? 0
        var nextPurchase = try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(id) FROM credit_purchases")) ?? 0
        var nextLot = try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(id) FROM credit_lots")) ?? 0
        // Lots a released hold took from, emptied since (they are not among the open lots read above).
        let loaded = Set(lots.map(\.id))
        let lotById = try db.cachedStatement(sql: "SELECT \(LotRows.columns) FROM credit_lots WHERE id = ?")
        for id in LotRows.heldLotIds(uploads) where !loaded.contains(id) {
            if let row = try Row.fetchOne(lotById, arguments: [id]) { lots.append(try LotRows.decode(SQLiteStore.values(row))) }
        }

        let plan = BatchPlanner(catalog: catalog, lotRules: lotRules).plan(
            ops.map(\.keyed), existingKeys: existing, balances: balances, reserved: reserved, uploads: uploads,
            payments: payments, lots: lots, nowMs: nowMs,
            sponsorship: try sponsorshipState(ops, db: db, rules: rules, profiles: profiles, nowMs: nowMs),
            platformBalances: platform,
            nextTransactionId: { nextTxn += 1; return nextTxn },
            nextPurchaseId: { nextPurchase += 1; return nextPurchase },
            nextLotId: { nextLot += 1; return nextLot })
        try write(plan, existingUsers: balances, db: db, nowMs: nowMs)
        return plan.results.map { $0.mapError { $0 as any Error } }
    }

    private static func write(_ plan: BatchPlan, existingUsers: [String: Int64], db: Database, nowMs: Int64) throws {
        // Atomic with its check: the update applies only if the balance stays >= 0, and it must
        // land exactly where the planner expected, or the whole transaction rolls back.
        let update = try db.cachedStatement(sql: """
            UPDATE user_credits SET balance = balance + ?, reserved = reserved + ?, total_earned = total_earned + ?,
                total_spent = total_spent + ?, total_purchased = total_purchased + ?, updated_at = ?
            WHERE user_id = ? AND balance + ? >= ? AND reserved + ? >= 0
            RETURNING balance
            """)
        let insert = try db.cachedStatement(sql: """
            INSERT INTO user_credits (user_id, balance, reserved, total_earned, total_spent, total_purchased, created_at, updated_at)
            SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE ? >= ? AND ? >= 0
            RETURNING balance
            """)
        for u in plan.users {
            let after: Int64?
            if existingUsers[u.userId] == nil {
                after = try Int64.fetchOne(insert, arguments: [
                    u.userId, u.balance, u.reserved, u.earned, u.spent, u.purchased, nowMs, nowMs, u.balance, u.floor, u.reserved,
                ])
            } else {
                let raw = SQLiteRaw(update, db)
                try raw.bind(u.balance, u.reserved, u.earned, u.spent, u.purchased, nowMs, u.userId, u.balance, u.floor, u.reserved)
                after = try raw.step() ? raw.int(0) : nil
                try raw.run()
            }
            guard after == u.balanceBefore + u.balance else {
                throw StoreInvariantError(description: "user \(u.userId): balance moved under the writer")
            }
        }
        let journal = try db.cachedStatement(sql: """
            INSERT INTO credit_transactions (id, kind, user_id, debit_account, credit_account, amount,
                debit_balance_after, credit_balance_after, reference, description, created_at, lots)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for r in plan.journal {
            try SQLiteRaw(journal, db).run(r.id, r.kind.rawValue, r.userId, r.debit.id, r.credit.id, r.amount,
                                           r.debitBalanceAfter, r.creditBalanceAfter, r.reference, r.description, nowMs, r.lots)
        }
        let newLot = try db.cachedStatement(sql: "INSERT INTO credit_lots (\(LotRows.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        for l in plan.newLots {
            try newLot.execute(arguments: [l.id, l.userId, l.category.rawValue, l.source, l.granted, l.remaining, l.expiresAtMs, l.createdAtMs])
        }
        let lot = try db.cachedStatement(sql: "UPDATE credit_lots SET granted = ?, remaining = ? WHERE id = ?")
        for l in plan.lots {
            try SQLiteRaw(lot, db).run(l.granted, l.remaining, l.id)
            guard db.changesCount == 1 else { throw StoreInvariantError(description: "lot \(l.id) vanished under the writer") }
        }
        let payment = try db.cachedStatement(sql: """
            INSERT INTO credit_purchases (\(PaymentRows.upsertColumns))
            VALUES (\(PaymentRows.upsertPlaceholders))
            \(PaymentRows.upsertConflict)
            """)
        for p in plan.payments {
            try payment.execute(arguments: StatementArguments(PaymentRows.values(p, nowMs: nowMs).map { value -> (any DatabaseValueConvertible)? in
                switch value {
                case .int(let v): v
                case .text(let t): t
                }
            }))
        }
        let key = try db.cachedStatement(sql: "INSERT INTO idempotency_keys (key, request_hash, outcome, created_at) VALUES (?, ?, ?, ?)")
        for k in plan.newKeys {
            try SQLiteRaw(key, db).run(k.key, k.requestHash, OutcomeCoding.encode(k.outcome), nowMs)
        }
        try writeUploads(plan.uploads, db: db, nowMs: nowMs)
        try writeSponsorship(plan, db: db, nowMs: nowMs)
        let platform = try db.cachedStatement(sql: "UPDATE platform_accounts SET balance = ?, updated_at = ? WHERE name = ?")
        for (account, balance) in plan.platformBalances {
            try platform.execute(arguments: [balance, nowMs, account.rawValue])
        }
    }
}

extension SQLiteLedgerWriter {
    static func writeUploads(_ changes: [UploadChange], db: Database, nowMs: Int64) throws {
        for change in changes {
            switch change {
            case .created(let r, let credits, let sponsored, let lots):
                try db.cachedStatement(sql: """
                    INSERT INTO file_uploads (upload_id, user_id, file_type, file_count, features, size_bytes, priority,
                        credits_reserved, status, sponsored, created_at, updated_at, lots)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)
                    """).execute(arguments: [
                        r.uploadId, r.userId, r.fileType, r.fileCount, r.features.joined(separator: ","), r.sizeBytes,
                        r.priority.rawValue, credits, sponsored ? 1 : 0, nowMs, nowMs, lots.text,
                    ])
            case .captured(let uploadId, let credits):
                try db.cachedStatement(sql: """
                    UPDATE file_uploads SET status = 'confirmed', credits_charged = ?, failure_reason = NULL, updated_at = ?
                    WHERE upload_id = ?
                    """).execute(arguments: [credits, nowMs, uploadId])
            case .released(let uploadId, let reason):
                try db.cachedStatement(sql: """
                    UPDATE file_uploads SET status = 'refunded', failure_reason = COALESCE(NULLIF(?, ''), failure_reason),
                        updated_at = ? WHERE upload_id = ?
                    """).execute(arguments: [reason, nowMs, uploadId])
            }
        }
    }
}

extension SQLiteLedgerWriter {
    static func sponsorshipState(
        _ ops: [PreparedOperation], db: Database, rules: SponsorshipRules, profiles: [String: UserProfile], nowMs: Int64
    ) throws -> SponsorshipState? {
        guard SponsorshipBudget.needed(ops) else { return nil }
        let used = try Int64.fetchOne(db.cachedStatement(sql: "SELECT used FROM sponsorship_budget WHERE month = ?"),
                                      arguments: [SponsorshipBudget.month(nowMs)]) ?? 0
        return SponsorshipState(rules: rules, profiles: profiles, budgetRemaining: rules.monthlyBudgetCredits - used, nowMs: nowMs)
    }

    /// Creators' used slots and the month's budget, in the ledger's transaction.
    static func writeSponsorship(_ plan: BatchPlan, db: Database, nowMs: Int64) throws {
        for (user, delta) in plan.sponsoredSlots where delta != 0 {
            try db.cachedStatement(sql: """
                UPDATE users SET sponsored_used = sponsored_used + ?, updated_at = ? WHERE user_id = ? AND sponsored_used + ? >= 0
                """).execute(arguments: [delta, nowMs, user, delta])
            guard db.changesCount == 1 else { throw StoreInvariantError(description: "user \(user): sponsored slots out of step") }
        }
        for r in plan.sponsoredUploads {
            try db.cachedStatement(sql: """
                INSERT INTO sponsored_uploads (file_upload_id, user_id, reason, credits, usd_value_cents, gas_value_cents, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [r.fileUploadId, r.userId, r.reason, r.credits, r.usdValueCents, r.gasValueCents, nowMs])
        }
        let budget = SponsorshipBudget.delta(plan)
        if budget != 0 {
            try db.cachedStatement(sql: """
                INSERT INTO sponsorship_budget (month, used) VALUES (?, ?) ON CONFLICT (month) DO UPDATE SET used = used + excluded.used
                """).execute(arguments: [SponsorshipBudget.month(nowMs), budget])
        }
    }
}
