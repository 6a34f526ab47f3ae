import CreditsCore
import GRDB

/// Checks every ledger invariant of DESIGN.md against the journal. Read-only.
///
/// 1. Each account's cached balance equals the sum of its journal movements.
/// 2. Each journal row's balance-after equals the running sum of that account's movements.
/// 3. The sum of all balances is zero.
/// 4. No user balance or hold is below zero.
/// 5. Each user's totals equal the journal rows of their kinds.
/// 6. Each purchase's credits equal the journal rows it posted.
/// 7. Every account in the journal exists.
/// 8. No operation posted the same kind of row twice.
enum SQLiteReconciler {
    static func run(_ db: Database) throws -> ReconcileReport {
        var problems: [String] = []
        let journalRows = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM credit_transactions") ?? 0

        var journalSum: [String: Int64] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT account, SUM(delta) FROM (
                SELECT credit_account AS account, amount AS delta FROM credit_transactions
                UNION ALL SELECT debit_account, -amount FROM credit_transactions)
            GROUP BY account
            """) {
            journalSum[row[0]] = row[1]
        }

        var cached: [(account: String, balance: Int64)] = []
        for row in try Row.fetchAll(db, sql: "SELECT user_id, balance, reserved FROM user_credits ORDER BY user_id") {
            let account = Account.user(row[0]).id
            let balance: Int64 = row[1]
            let reserved: Int64 = row[2]
            cached.append((account, balance))
            if balance < 0 { problems.append("account \(account): balance \(balance) is below zero") }
            if reserved < 0 { problems.append("account \(account): reserved \(reserved) is below zero") }
        }
        for row in try Row.fetchAll(db, sql: "SELECT name, balance FROM platform_accounts ORDER BY name") {
            let name: String = row[0]
            cached.append(("platform:\(name)", row[1]))
        }
        var balanceProblems: [String] = []
        for (account, balance) in cached {
            let expected = journalSum[account] ?? 0
            if balance != expected {
                balanceProblems.append("account \(account): cached balance \(balance) but the journal sums to \(expected)")
            }
        }
        let known = Set(cached.map(\.account))
        for account in journalSum.keys.sorted() where !known.contains(account) {
            balanceProblems.append("account \(account): in the journal but has no balance row")
        }
        problems.insert(contentsOf: balanceProblems, at: 0)

        let total = cached.reduce(Int64(0)) { $0 + $1.balance }
        if total != 0 { problems.append("ledger: the sum of all balances is \(total), not zero") }

        for row in try Row.fetchAll(db, sql: """
            SELECT account, id, after, running FROM (
                SELECT account, id, after,
                       SUM(delta) OVER (PARTITION BY account ORDER BY id ROWS UNBOUNDED PRECEDING) AS running
                FROM (SELECT id, credit_account AS account, amount AS delta, credit_balance_after AS after
                      FROM credit_transactions
                      UNION ALL
                      SELECT id, debit_account, -amount, debit_balance_after FROM credit_transactions))
            WHERE running <> after ORDER BY account, id LIMIT 20
            """) {
            let account: String = row[0]
            let id: Int64 = row[1]
            let after: Int64 = row[2]
            let running: Int64 = row[3]
            problems.append("account \(account): row txn_\(id) says balance \(after) but the running sum is \(running)")
        }

        for row in try Row.fetchAll(db, sql: """
            SELECT u.user_id, u.total_purchased, u.total_spent, u.total_earned,
                COALESCE(SUM(CASE WHEN t.kind IN ('purchase', 'purchase_bonus') AND t.credit_account = 'user:' || u.user_id THEN t.amount END), 0),
                COALESCE(SUM(CASE WHEN t.kind = 'spend' AND t.debit_account = 'user:' || u.user_id THEN t.amount END), 0),
                COALESCE(SUM(CASE WHEN t.kind = 'adjustment' AND t.credit_account = 'user:' || u.user_id THEN t.amount END), 0)
            FROM user_credits u LEFT JOIN credit_transactions t ON t.user_id = u.user_id
            GROUP BY u.user_id ORDER BY u.user_id
            """) {
            let account = Account.user(row[0]).id
            let names = ["totalPurchased", "totalSpent", "totalEarned"]
            for i in 0..<3 where (row[1 + i] as Int64) != (row[4 + i] as Int64) {
                problems.append("account \(account): \(names[i]) is \(row[1 + i] as Int64) but the journal says \(row[4 + i] as Int64)")
            }
        }

        for row in try Row.fetchAll(db, sql: """
            WITH posted AS (
                SELECT reference, SUM(amount) AS total FROM credit_transactions
                WHERE kind IN ('purchase', 'purchase_bonus') GROUP BY reference)
            SELECT p.id, p.credits, p.base_credits + p.bonus_credits, COALESCE(posted.total, 0)
            FROM credit_purchases p
            LEFT JOIN posted ON posted.reference = 'purchase:' || p.payment_method || ':' || p.payment_id
            ORDER BY p.id
            """) {
            let id: Int64 = row[0]
            let credits: Int64 = row[1]
            let parts: Int64 = row[2]
            let posted: Int64 = row[3]
            if credits != parts || credits != posted {
                problems.append("purchase pur_\(id): credits \(credits), base+bonus \(parts), journal \(posted)")
            }
        }

        for row in try Row.fetchAll(db, sql: """
            SELECT reference, kind, COUNT(*) FROM credit_transactions
            GROUP BY reference, kind HAVING COUNT(*) > 1 ORDER BY reference LIMIT 20
            """) {
            let reference: String = row[0]
            let kind: String = row[1]
            let count: Int = row[2]
            problems.append("operation \(reference): \(count) journal rows of kind \(kind), expected one")
        }
        return ReconcileReport(accountsChecked: cached.count, journalRows: journalRows, problems: problems)
    }
}
