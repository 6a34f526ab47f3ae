import CreditsCore
import Foundation
import GRDB

/// Applies a batch of operations inside one write transaction of the SQLite store.
///
/// Per operation, in order: idempotency lookup (before any balance check), then the plan, then a
/// conditional update of the user's row (`WHERE balance + delta >= 0`), then journal rows and the
/// keys with the outcome. A rejected operation writes only its remembered outcome. Platform
/// balances are summed in memory and written once per batch.
struct SQLiteLedgerWriter {
    let db: Database
    let catalog: Catalog
    let nowMs: Int64
    /// Platform balances at the start of the batch and as the batch has moved them.
    private var platformStart: [PlatformAccount: Int64] = [:]
    private var platformNow: [PlatformAccount: Int64] = [:]

    init(db: Database, catalog: Catalog, nowMs: Int64) {
        self.db = db
        self.catalog = catalog
        self.nowMs = nowMs
    }

    mutating func apply(_ p: PreparedOperation) throws -> Result<OperationResult, any Error> {
        for key in p.keys {
            guard let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT request_hash, outcome FROM idempotency_keys WHERE key = ?"),
                arguments: [key])
            else { continue }
            let storedHash: Data = row[0]
            if storedHash != p.requestHash {
                return .failure(CreditsError.conflict(String(key.drop(while: { $0 != ":" }).dropFirst())))
            }
            let outcomeJSON: String = row[1]
            let outcome = try OutcomeCoding.decode(outcomeJSON)
            try remember(p, outcomeJSON: outcomeJSON, ignoreExisting: true)
            return .success(OperationResult(outcome: outcome, replayed: true))
        }
        let outcome = try post(p.operation, reference: p.naturalKey)
        let json = OutcomeCoding.encode(outcome)
        try remember(p, outcomeJSON: json, ignoreExisting: false)
        return .success(OperationResult(outcome: outcome, replayed: false))
    }

    /// Writes the platform balances the batch moved. Call once, after the last `apply`.
    func finish() throws {
        for (account, balance) in platformNow where balance != platformStart[account] {
            try db.cachedStatement(sql: "UPDATE platform_accounts SET balance = ?, updated_at = ? WHERE name = ?")
                .execute(arguments: [balance, nowMs, account.rawValue])
        }
    }

    private func remember(_ p: PreparedOperation, outcomeJSON: String, ignoreExisting: Bool) throws {
        let sql = ignoreExisting
            ? "INSERT OR IGNORE INTO idempotency_keys (key, request_hash, outcome, created_at) VALUES (?, ?, ?, ?)"
            : "INSERT INTO idempotency_keys (key, request_hash, outcome, created_at) VALUES (?, ?, ?, ?)"
        for key in p.keys {
            try db.cachedStatement(sql: sql).execute(arguments: [key, p.requestHash, outcomeJSON, nowMs])
        }
    }

    private mutating func post(_ op: LedgerOperation, reference: String) throws -> LedgerOutcome {
        let plan = LedgerRules.plan(op, catalog: catalog)
        guard let balanceAfter = try updateUser(op.userId, plan) else {
            let available = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT balance FROM user_credits WHERE user_id = ?"),
                arguments: [op.userId]) ?? 0
            guard let rejection = LedgerRules.check(plan, available: available, catalog: catalog) else {
                preconditionFailure("conditional update refused a plan the balance covers")
            }
            return .rejected(rejection)
        }
        var userBalance = balanceAfter - plan.balanceDelta
        var lastRowId: Int64 = 0
        let description: String = switch op {
        case .spend(let r): r.description
        case .adjust(let r): r.reason
        case .purchase(let r): "\(r.package) package via \(r.paymentMethod.rawValue)"
        }
        for posting in plan.postings {
            let debitAfter = try move(posting.debit, by: -posting.amount, userBalance: &userBalance)
            let creditAfter = try move(posting.credit, by: posting.amount, userBalance: &userBalance)
            try db.cachedStatement(sql: """
                INSERT INTO credit_transactions (kind, user_id, debit_account, credit_account, amount,
                    debit_balance_after, credit_balance_after, reference, description, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    posting.kind.rawValue, op.userId, posting.debit.id, posting.credit.id, posting.amount,
                    debitAfter, creditAfter, reference, description, nowMs,
                ])
            lastRowId = db.lastInsertedRowID
        }
        precondition(userBalance == balanceAfter, "postings add up to the plan's balance delta")
        switch op {
        case .purchase(let r):
            return .purchased(try insertPurchase(r, balance: balanceAfter))
        case .spend(let r):
            return .spent(SpendReceipt(
                transactionId: "txn_\(lastRowId)", userId: r.userId, credits: r.credits,
                fileUploadId: r.fileUploadId, balance: balanceAfter))
        case .adjust(let r):
            return .adjusted(AdjustmentReceipt(
                transactionId: "txn_\(lastRowId)", adjustmentId: r.adjustmentId, userId: r.userId,
                credits: r.credits, balance: balanceAfter))
        }
    }

    /// Applies the plan to the user's row atomically with its balance check. nil: not covered.
    private func updateUser(_ userId: String, _ plan: LedgerPlan) throws -> Int64? {
        if plan.balanceDelta >= 0 {
            return try Int64.fetchOne(db.cachedStatement(sql: """
                INSERT INTO user_credits (user_id, balance, total_earned, total_spent, total_purchased, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (user_id) DO UPDATE SET
                    balance = balance + excluded.balance,
                    total_earned = total_earned + excluded.total_earned,
                    total_spent = total_spent + excluded.total_spent,
                    total_purchased = total_purchased + excluded.total_purchased,
                    updated_at = excluded.updated_at
                RETURNING balance
                """), arguments: [userId, plan.balanceDelta, plan.earnedDelta, plan.spentDelta, plan.purchasedDelta, nowMs, nowMs])
        }
        return try Int64.fetchOne(db.cachedStatement(sql: """
            UPDATE user_credits SET
                balance = balance + ?, total_earned = total_earned + ?, total_spent = total_spent + ?,
                total_purchased = total_purchased + ?, updated_at = ?
            WHERE user_id = ? AND balance + ? >= 0
            RETURNING balance
            """), arguments: [plan.balanceDelta, plan.earnedDelta, plan.spentDelta, plan.purchasedDelta, nowMs, userId, plan.balanceDelta])
    }

    /// Moves one side of a posting; returns that account's balance after it.
    private mutating func move(_ account: Account, by delta: Int64, userBalance: inout Int64) throws -> Int64 {
        switch account {
        case .user:
            userBalance += delta
            return userBalance
        case .platform(let p):
            if platformNow[p] == nil {
                guard let start = try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT balance FROM platform_accounts WHERE name = ?"),
                    arguments: [p.rawValue])
                else { preconditionFailure("platform account \(p.rawValue) exists after migration") }
                platformStart[p] = start
                platformNow[p] = start
            }
            platformNow[p]! += delta
            return platformNow[p]!
        }
    }

    private func insertPurchase(_ r: PurchaseRequest, balance: Int64) throws -> PurchaseReceipt {
        guard let pkg = catalog.package(r.package) else { preconditionFailure("validated before planning") }
        try db.cachedStatement(sql: """
            INSERT INTO credit_purchases (user_id, package, payment_method, payment_id, credits, base_credits,
                bonus_credits, price_cents, status, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'completed', ?, ?)
            """).execute(arguments: [
                r.userId, pkg.id, r.paymentMethod.rawValue, r.paymentId, pkg.totalCredits, pkg.credits,
                pkg.bonusCredits, pkg.priceCents, nowMs, nowMs,
            ])
        return PurchaseReceipt(
            purchaseId: "pur_\(db.lastInsertedRowID)", userId: r.userId, package: pkg.id,
            credits: pkg.totalCredits, baseCredits: pkg.credits, bonusCredits: pkg.bonusCredits,
            priceCents: pkg.priceCents, paymentMethod: r.paymentMethod, paymentId: r.paymentId,
            status: "completed", balance: balance)
    }
}
